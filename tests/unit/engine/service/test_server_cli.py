"""`hft engine` options read from the environment are validated like flags."""

import pytest

from hft.engine.server import _parser


def test_environment_defaults_are_integers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFT_ENGINE_PORT", "50999")
    args = _parser().parse_args([])
    assert (args.port, args.metrics_port) == (50999, 9101)


@pytest.mark.parametrize("name", ["HFT_ENGINE_PORT", "HFT_ENGINE_METRICS_PORT"])
def test_malformed_environment_value_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    monkeypatch.setenv(name, "abc")
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args([])
    assert exc.value.code == 2
    assert "invalid int value: 'abc'" in capsys.readouterr().err
