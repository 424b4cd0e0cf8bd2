"""``caviar export-model``: a saved model (``caviar-mlp-1`` NPZ) to an ONNX file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import BadInput
from service.cli import app
from service.model_file import check_output
from service.output import check_format, dumps, stdout_console

_FORMATS = ("table", "json")


def _check_output(output: Path, model: Path) -> None:
    if output.suffix.lower() != ".onnx":
        raise BadInput("--output", str(output), "expected a file name ending in .onnx")
    check_output(output, "--output")
    with contextlib.suppress(OSError):
        if output.exists() and output.samefile(model):
            raise BadInput("--output", str(output), "expected a different file than the model itself")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory: all or nothing."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.absolute().parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _shape(dims: list[Any]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


@app.command("export-model")
def export_model(
    model: Annotated[Path, typer.Argument(help="A saved model: the NPZ file `caviar train --save` writes.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ONNX file to write (.onnx).")],
    opset: Annotated[int, typer.Option("--opset", help="ONNX operator-set version (13 or later).")] = 17,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Report: table or json.")] = "table",
) -> None:
    """Export a trained model to ONNX, for inference with onnxruntime or any ONNX runtime.

    The graph takes RAW features (input `features` [N, D], in the model's float32 or float64; the
    standardization is part of the graph) and gives `probabilities` [N, C] and `label_index` [N]
    (int64); the original class labels are in the model's metadata (`classes`, a JSON list), with
    the caviar config (`config`). Batch norm is folded into the preceding layer's weights.

    Needs the optional packages onnx and onnxruntime: pip install 'caviar\\[onnx]'.

    Example:
        caviar export-model digits.npz -o digits.onnx
    """
    check_format(fmt, _FORMATS)
    _check_output(output, model)

    from core.nn import Model
    from core.nn.onnx_export import describe_onnx, to_onnx

    net = Model.load(model)
    data = to_onnx(net, opset=opset)
    summary = describe_onnx(data)
    _write_atomically(output, data)

    report = {
        "path": str(output),
        "model": str(model),
        "bytes": len(data),
        **summary,
        "norm": net.layout.norm,
        "dtype": net.dtype.name,
        "classes": list(net.classes),
    }
    if fmt == "json":
        typer.echo(dumps(report))
        return
    out = stdout_console()
    out.print(f"wrote {output}: {len(data):,} bytes, ONNX opset {summary['opset']} "
              f"(IR {summary['ir_version']}), {summary['parameters']:,} parameters", markup=False)
    for kind in ("inputs", "outputs"):
        for v in summary[kind]:
            out.print(f"  {kind[:-1]:<6} {v['name']:<14} {v['type']:<8} {_shape(v['shape'])}", markup=False)
    ops = ", ".join(f"{op}×{n}" if n > 1 else op for op, n in summary["ops"].items())
    out.print(f"  graph  {ops}", markup=False)
    if net.classes:
        out.print(f"  classes {dumps(list(net.classes))} (metadata 'classes'; label_index indexes it)",
                  markup=False)
