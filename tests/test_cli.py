"""The command line: demo output reproduces the issue's lme4 tables; fit on a CSV file; bad
input as one error line, closed pipes, --version, delimiters, --family, --reml/--ml, warnings."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

import mixedmodels as mm
from mixedmodels.presentation.cli import demo, main


def test_demo_prints_lme4_tables():
    out = io.StringIO()
    demo(out)
    text = out.getvalue()
    # anova(gpa_1, gpa_2) after ML refit: the lines as R 4 / lme4 1.1-31 prints them
    assert "gpa_1    6 258.23 288.77 -123.12   246.23\n" in text
    assert "gpa_2    7 250.07 285.70 -118.03   236.07 10.166  1   0.001431 **" in text
    assert "gpa_2: gpa ~ occasion + sex + (1 + occasion | student)" in text
    # anova(gpa_3, gpa_1, refit=FALSE)
    assert "gpa_3    4 416.89 437.25 -204.45   408.89\n" in text
    assert "gpa_1    6 272.96 303.50 -130.48   260.96 147.94  2  < 2.2e-16 ***" in text
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


# --------------------------------------------------------------------------------------------
# bad input, pipes, delimiters, families and warnings
# --------------------------------------------------------------------------------------------

FORMULA = "Reaction ~ Days + (Days | Subject)"


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    code = "import sys; from mixedmodels.presentation.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


def test_directory_as_data_is_an_error_line(tmp_path, capsys):
    assert main(["fit", FORMULA, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "Traceback" not in err


def test_missing_file_is_an_error_line(tmp_path, capsys):
    assert main(["fit", FORMULA, str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unknown_help_topic_is_an_error_line(capsys):
    assert main(["help", "no-such-topic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no help topic 'no-such-topic'") and "singular" in err


def test_help_into_a_closed_pipe_exits_quietly():
    code = ("import sys; from mixedmodels.presentation.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "help", "convergence"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)          # like `| head -c 10`: read a little, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert "BrokenPipeError" not in err and "Traceback" not in err


def test_help_piped_to_head_in_a_shell():
    cmd = (f"{sys.executable} -c 'import sys; from mixedmodels.presentation.cli import main; "
           f"sys.exit(main(sys.argv[1:]))' help convergence | head -n 1")
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# Troubleshooting") and "Traceback" not in out.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"mixedmodels {mm.__version__}"


@pytest.mark.parametrize("sep, option", [(";", None), ("\t", None), ("|", None), (";", ";"),
                                         ("\t", "tab"), ("\t", "\\t")])
def test_delimiter_detected_or_given(tmp_path, capsys, sep, option):
    path = tmp_path / "sleep.txt"
    mm.load_dataset("sleepstudy").to_csv(path, sep=sep, index=False)
    argv = ["fit", FORMULA, str(path)] + ([] if option is None else ["--sep", option])
    assert main(argv) == 0
    assert "REML criterion at convergence: 1743.6" in capsys.readouterr().out


def test_wrong_sep_gives_a_clear_error(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    mm.load_dataset("sleepstudy").to_csv(path, sep=";", index=False)
    assert main(["fit", FORMULA, str(path), "--sep", ","]) == 2
    assert "error:" in capsys.readouterr().err


def test_family_fits_a_glmm(tmp_path, capsys):
    path = tmp_path / "cbpp.csv"
    mm.load_dataset("cbpp").to_csv(path, index=False)
    assert main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", str(path),
                 "--family", "binomial", "--categorical", "period,herd"]) == 0
    out = capsys.readouterr().out
    assert "Generalized linear mixed model" in out and "binomial" in out
    assert "-92.0" in out     # lme4's logLik -92.03


def test_unknown_family_is_an_error_line(tmp_path, capsys):
    path = tmp_path / "cbpp.csv"
    mm.load_dataset("cbpp").to_csv(path, index=False)
    assert main(["fit", "incidence ~ period + (1 | herd)", str(path), "--family", "binomal"]) == 2
    assert "unknown family 'binomal'" in capsys.readouterr().err


def test_reml_and_ml_flags(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    mm.load_dataset("sleepstudy").to_csv(path, index=False)
    assert main(["fit", FORMULA, str(path), "--reml"]) == 0
    assert "fit by REML" in capsys.readouterr().out
    assert main(["fit", FORMULA, str(path), "--ml"]) == 0
    assert "fit by maximum likelihood" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["fit", FORMULA, str(path), "--ml", "--reml"])
    assert exc.value.code == 2
    path2 = tmp_path / "cbpp.csv"
    mm.load_dataset("cbpp").to_csv(path2, index=False)
    assert main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", str(path2),
                 "--family", "binomial", "--reml"]) == 2
    assert "--reml is for linear mixed models" in capsys.readouterr().err


def test_unknown_categorical_column(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    mm.load_dataset("sleepstudy").to_csv(path, index=False)
    assert main(["fit", FORMULA, str(path), "--categorical", "Subjekt"]) == 2
    assert "--categorical column 'Subjekt'" in capsys.readouterr().err


def test_warnings_print_without_source_line(tmp_path):
    data = mm.load_dataset("sleepstudy")
    data["Days"] = data["Days"] * 1000.0            # a scaling warning
    path = tmp_path / "scaled.csv"
    data.to_csv(path, index=False)
    out = _cli("fit", "Reaction ~ Days + (1 | Subject)", str(path))
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert lines and lines[0].startswith("Warning (ScalingWarning): ")
    assert all(l.startswith("Warning (") for l in lines)     # no "file.py:12:" nor source lines
    assert "warnings.warn" not in out.stderr and ".py:" not in out.stderr
