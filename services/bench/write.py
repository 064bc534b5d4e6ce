"""`wallet bench write`: placeholder until the benchmark lands."""


def run_write_benchmark() -> int:
    raise NotImplementedError
