"""bench/gpu_check.py on torch's CPU backend: every kernel checked against its float64
reference, and a wrong kernel is reported (exit status 1)."""

from __future__ import annotations

import json

import pytest
import torch

from bench import gpu_check
from kernels import dispatch, torch_scan


def run_check(tmp_path, *extra: str) -> tuple[int, list[dict]]:
    out = tmp_path / "rows.json"
    argv = ["--device", "cpu", "--queries", "2", "--repeats", "1", "--json", str(out), *extra]
    status = gpu_check.main(argv)
    return status, json.loads(out.read_text())["rows"]


def test_gpu_check_passes_on_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")  # main sets it to cpu; restored afterwards
    status, rows = run_check(tmp_path, "--sizes", "3000,20000")
    assert status == 0
    kernels = {r["kernel"] for r in rows}
    assert {k.split()[0] for k in kernels} == {"sdc", "adc", "fp16", "chamfer", "fde"}
    assert {r["n"] for r in rows if r["kernel"].startswith("sdc")} == {3000, 20000}
    torch_rows = [r for r in rows if r["impl"].startswith("torch")]
    assert len(torch_rows) == 2 * (2 + 2 + 1 + 2 + 1)  # sizes x (sdc, adc, fp16, chamfer, fde)
    assert all(r["ok"] and r["error"] < 1e-4 and r["ms"] > 0 for r in rows)
    printed = capsys.readouterr().out
    assert "summary" in printed and "FAIL" not in printed


def test_gpu_check_reports_a_wrong_kernel(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(dispatch.ENV_VAR, "auto")
    real = torch_scan.lut_scores

    def off_by_one_key(luts: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return real(luts, (keys + 1) % luts.shape[2])

    monkeypatch.setattr(torch_scan, "lut_scores", off_by_one_key)
    status, rows = run_check(tmp_path, "--sizes", "2000", "--only", "sdc")
    assert status == 1
    assert [r["ok"] for r in rows if r["impl"].startswith("torch")] == [False, False]
    assert all(r["ok"] for r in rows if not r["impl"].startswith("torch"))
