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


def scraped(text: str, name: str, **labels: str) -> float | None:
    """One sample of a metrics page; None when the page has none such. A labelled series
    appears with its first count, and a misspelled name or label never does, so only the
    caller can tell "not counted yet" (before) from "no such series" (after)."""
    return scraped_samples(text).get((name, frozenset(labels.items())))


def label_values(text: str, name: str, label: str) -> set[str]:
    """The values `label` takes in the samples `name` on a metrics page. Raises KeyError
    when no sample of that name has that label (a misspelled name or label)."""
    values = {
        dict(labels)[label]
        for sample_name, labels in scraped_samples(text)
        if sample_name == name and label in dict(labels)
    }
    if not values:
        raise KeyError(f"no sample {name} with a label {label!r} on the page")
    return values
