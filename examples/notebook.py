"""A notebook session, as a script: train a pykan MultKAN, read its formula with kanx, call it.

Run it with ``python examples/notebook.py [WORKDIR]`` (needs the ``pykan`` extra:
``pip install -e ".[pykan]"``). Every cell below is what a user types in Jupyter; the last one
shows the LaTeX that Jupyter renders for the result object.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch


def main(workdir: Path) -> dict:
    # --- cell 1: train a pykan model for a few steps (pykan's own API)
    from kan import KAN
    from kan.utils import create_dataset

    def law(x: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)

    dataset = create_dataset(law, n_var=2, train_num=500, test_num=200, seed=0)
    model = KAN(width=[2, 5, 1], grid=5, k=3, seed=0, auto_save=False, ckpt_path=str(workdir / "pykan"))
    model.fit(dataset, opt="LBFGS", steps=20, lamb=0.001, log=1000, update_grid=False)

    # --- cell 2: the formula, straight from the live object
    import kanx

    result = kanx.symbolify(kanx.from_module(model))
    print(f"f = {result.expressions[0]}")

    # --- cell 3: the formula as code, written and imported back
    module_path = workdir / "formula.py"
    module_path.write_text(result.to_code("torch", source="the notebook's MultKAN"))
    spec = importlib.util.spec_from_file_location("formula", module_path)
    formula = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(formula)
    x = dataset["test_input"].double()
    exported = formula.__dict__[formula.__all__[0]](*x.T)
    gap = float((exported - result.function(0, "torch")(*x.T)).abs().max())
    print(f"exported code vs the result's callable: max |difference| = {gap:.3g}")

    # --- cell 4: what Jupyter shows for the result
    latex = result._repr_latex_()
    print(latex)
    return {"formula": result.expressions[0], "latex": latex, "code_gap": gap, "module": str(module_path)}


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="kanx-notebook-"))
    folder.mkdir(parents=True, exist_ok=True)
    main(folder)
