"""The command line: demo output reproduces the issue's lme4 tables; fit on a CSV file."""

from __future__ import annotations

import io

import mixedmodels as mm
from mixedmodels.presentation.cli import demo, main


def test_demo_prints_lme4_tables():
    out = io.StringIO()
    demo(out)
    text = out.getvalue()
    # anova(gpa_1, gpa_2) after ML refit, as lme4 prints it
    assert "258.234 288.775 -123.117   246.234" in text
    assert "250.068 285.699 -118.034   236.068  10.166  1   0.001431" in text
    # anova(gpa_3, gpa_1, refit=FALSE)
    assert "416.893 437.253 -204.446   408.893" in text
    assert "272.957 303.497 -130.478   260.957  147.936  2  < 2.2e-16" in text
    # AIC table, best first
    lines = [l for l in text.splitlines() if l.startswith("gpa_")][-3:]
    assert [l.split()[0] for l in lines] == ["gpa_2", "gpa_1", "gpa_3"]
    assert "269.785   0.000" in lines[0] and "272.957   3.171" in lines[1] and "416.893 147.108" in lines[2]


def test_fit_command(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    mm.load_dataset("sleepstudy").to_csv(path, index=False)
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", str(path), "--categorical", "Subject"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", str(path), "--ml"]) == 0
    assert "logLik" in capsys.readouterr().out


def test_fit_command_reports_bad_input(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    mm.load_dataset("sleepstudy").to_csv(path, index=False)
    assert main(["fit", "Reaction ~ Dayz + (1 | Subject)", str(path)]) == 2
    assert "did you mean 'Days'" in capsys.readouterr().err
