"""The porting gallery, measured: every case of examples/porting/gallery.py in
float64 and float32, 20 training steps (SGD with momentum; the Adam case with
the two frameworks' own Adams), through compare_models; then
transfer_weights torch -> Keras -> torch for both models, and an ambiguous pair.

    KERAS_BACKEND=tensorflow python acceptance/porting_gallery.py [--steps 20]

Prints one row per case and dtype: the largest difference of the layer outputs,
the gradients and the weights (after the last step), where the first divergence
is and the likely cause. Exits 1 unless every faithful port passes (float64:
<= 1e-10; float32: within crossloop.compare.TOLERANCES) and every planted bug is
caught at its layer with its cause in float64.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "porting"))

import gallery  # noqa: E402
import resnet  # noqa: E402

from crossloop.transfer import PairingError, transfer_weights  # noqa: E402


def cases(steps: int) -> bool:
    ok = True
    print(f"{'case':<34}{'dtype':<9}{'forward':>9}{'gradient':>10}{'weights':>10}  verdict")
    for case in gallery.CASES:
        for dtype in ("float64", "float32"):
            report = gallery.run_case(case, dtype, steps)
            problem = gallery.verdict(case, report)
            first = report.first_divergence
            if problem is None:
                verdict = "pass" if first is None else f"caught: {first.where()}"
            else:
                verdict = f"MISS: {problem}"
                ok = ok and not (dtype == "float32" and case.layer is not None)
            print(f"{case.name:<34}{dtype:<9}{report.max_diff('forward'):>9.1e}"
                  f"{report.max_diff('gradient'):>10.1e}{report.max_diff('weights'):>10.1e}  "
                  f"{verdict}")
            if dtype == "float64" and report.causes:
                print(f"{'':<33}cause: {report.causes[0]}")
    return ok


def round_trips() -> bool:
    ok = True
    for model in ("resnet", "transformer"):
        x, _ = gallery.batch(model)
        torch_model, keras_model = gallery.models(gallery.Case(model, model))
        before = {k: v.detach().numpy().copy() for k, v in torch_model.state_dict().items()}
        transfer_weights(torch_model, keras_model, inputs=x)
        back, _ = gallery.models(gallery.Case(model, model))
        back.load_state_dict({k: v * 0 for k, v in back.state_dict().items()})
        pairs = transfer_weights(keras_model, back, inputs=x)
        worst = max(float(np.max(np.abs(v.detach().numpy() - before[k])))
                    for k, v in back.state_dict().items() if not k.endswith("num_batches_tracked"))
        print(f"transfer_weights {model}: torch -> Keras -> torch over {len(pairs)} layers, "
              f"max |difference| {worst:g}")
        ok = ok and worst == 0
    x, _ = gallery.batch("resnet")
    try:
        transfer_weights(resnet.torch_resnet(), resnet.keras_resnet(bug="shortcut_first"), inputs=x)
        print("ambiguous pair: NOT stopped")
        return False
    except PairingError as exc:
        print(f"ambiguous pair stops with:\n{exc}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=gallery.STEPS)
    args = parser.parse_args()
    started = time.perf_counter()
    ok = cases(args.steps) & round_trips()
    print(f"{'PASS' if ok else 'FAIL'} ({time.perf_counter() - started:.0f}s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
