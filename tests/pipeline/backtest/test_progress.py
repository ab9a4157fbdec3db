from __future__ import annotations

import io

from pipeline.backtest.progress import Progress, format_eta


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestProgress:
    def test_quiet_when_not_a_terminal(self) -> None:
        out = io.StringIO()
        bar = Progress(1000, stream=out)
        bar.update(500)
        bar.close()
        assert not bar.enabled and out.getvalue() == ""
        assert bar.done == 500

    def test_bar_with_rate_and_eta_on_a_terminal(self) -> None:
        out = _Tty()
        bar = Progress(1000, label="a.yaml", stream=out, interval=0.0)
        bar.started -= 2.0  # two seconds in
        bar.update(250)
        line = bar.line(bar.started + 2.0)
        assert line.startswith("a.yaml [#######.....................]  25.0% 250/1,000 events")
        assert "125 ev/s ETA 0:06" in line
        bar.close()
        assert out.getvalue().startswith("\r\x1b[2Ka.yaml [") and out.getvalue().endswith("\n")

    def test_unknown_total(self) -> None:
        bar = Progress(None, stream=_Tty())
        bar.update(10)
        assert "10 events" in bar.line() and "ETA" not in bar.line()

    def test_format_eta(self) -> None:
        assert [format_eta(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01", "1:02:05"]
