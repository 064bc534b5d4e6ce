"""`wallet bench` runs the benchmarks of a source checkout and, where they or their extra are
missing (the image, a plain install), says how to get them instead of failing on an import."""

import sys

import pytest

from wallet_cli.main import main


@pytest.mark.parametrize("missing", ["benchmarks.cli", "httpx"])
def test_without_the_benchmarks_or_their_extra_wallet_bench_says_how_to_get_them(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "benchmarks.cli", raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail

    assert main(["bench", "read", "--calls", "1"]) == 2

    said = capsys.readouterr().err
    assert f"wallet bench: {missing} is not installed" in said
    assert "pip install -e '.[bench]'" in said


def test_wallet_bench_hands_its_arguments_to_the_benchmarks_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["bench", "read", "--calls", "0"])

    assert refused.value.code == 2
    assert (
        "wallet bench read: error: argument --calls: must be at least 1" in capsys.readouterr().err
    )


def test_other_commands_still_refuse_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["migrate", "--calls", "1"])

    assert refused.value.code == 2
    assert "unrecognized arguments: --calls 1" in capsys.readouterr().err
