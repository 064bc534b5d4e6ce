"""Reading Prometheus metrics in tests: from this process's registry, or from the text a
metrics endpoint answers."""

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


def sample(name: str, **labels: str) -> float:
    """A sample of this process's metrics; 0 when it has not been counted yet."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def scraped_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a metrics page, by (sample name, its labels)."""
    return {
        (item.name, frozenset(item.labels.items())): item.value
        for family in text_string_to_metric_families(text)
        for item in family.samples
    }


def scraped(text: str, name: str, **labels: str) -> float:
    """One sample of a metrics page; 0 when the page has none such."""
    return scraped_samples(text).get((name, frozenset(labels.items())), 0.0)
