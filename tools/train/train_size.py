#!/usr/bin/env python3
"""Train the size model of an existing CPnet model file and write it into its cpipc.json.

    train_size.py [--model models/cpipc_default_cpnet.pt] [--out PATH] [--threads 2]

For a network trained by train.py whose checkpoint was not kept (the embedded default):
the eager CPnet is rebuilt from the TorchScript file's own weights, Cellpose 3.1.1.2's
train.train_size runs on the same synthetic training data train.py used (the data recipe
is read from cpipc.json), and the *loaded* TorchScript module is saved again with the
new cpipc.json: the weights stay bit-identical (checked), only the metadata changes.
Runs in ~/.cache/cpipc/cellpose3-venv (train.sh makes it).
"""
import argparse
import json
import os
import re
import sys
import tempfile

import torch
from cellpose.resnet_torch import CPnet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402  (this directory's train.py: data, train_size_model)


def eager_from_script(module, meta):
    """The CPnet the traced module came from (train.Exported wraps it as `net`)."""
    net = CPnet(meta["nbase"], nout=meta["nout"], sz=3, mkldnn=False)
    sd = {k[len("net."):]: v for k, v in module.state_dict().items() if k.startswith("net.")}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if unexpected or any(k not in ("diam_mean", "diam_labels") for k in missing):
        sys.exit(f"train_size.py: weights do not fit CPnet{meta['nbase']}: "
                 f"missing {missing}, unexpected {unexpected}")
    net.diam_mean.data[:] = meta["diam_mean"]
    net.diam_labels.data[:] = meta["diam_labels"]
    net.eval()
    x = torch.randn(2, 2, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        (y0, s0), (y1, s1) = module(x), net(x)[:2]
    diff = max((y0 - y1).abs().max().item(), (s0 - s1).abs().max().item())
    if diff > 1e-5:
        sys.exit(f"train_size.py: the rebuilt eager net differs from the file by {diff:g}")
    return net, diff


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=os.path.join(train.REPO, "models", "cpipc_default_cpnet.pt"))
    p.add_argument("--out", default=None, help="default: overwrite --model (and its .json)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=None,
                   help="train on the first N training images only (train_size costs minutes per image on a CPU)")
    a = p.parse_args()
    out = a.out or a.model
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    extra = {"cpipc.json": ""}
    module = torch.jit.load(a.model, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["cpipc.json"])
    before = {k: v.clone() for k, v in module.state_dict().items()}
    net, diff = eager_from_script(module, meta)
    print(f"rebuilt eager CPnet{meta['nbase']} from {a.model}: max |eager - file| {diff:g}")

    # The data recipe train.py recorded: "tools/synth/synth.py seed S n N size L ..."
    # (older recipes: "seed S n N size L"; newer ones put "family F" before size)
    fields = [re.search(rf"\b{k} (\d+)", meta["training_data"]) for k in ("seed", "n", "size")]
    e = re.search(r"seed (\d+) n (\d+)", meta.get("eval", {}).get("data", ""))
    if not all(fields):
        sys.exit(f"train_size.py: cannot read the training data recipe {meta['training_data']!r}")
    seed, n, size = (int(f.group(1)) for f in fields)
    # train.py's newer recipes also name the generator family, channels and bits
    family = re.search(r"family (\S+)", meta["training_data"])
    channels = re.search(r"channels (\d)", meta["training_data"])
    bits = re.search(r"bits (\d+)(?:\s|$)", meta["training_data"])  # "bits 8|16": drawn per image (0)
    seamless = re.search(r"seamless ([\d.]+)", meta["training_data"])
    data = dict(family=family.group(1) if family else "star", channels=int(channels.group(1)) if channels else 1,
                bits=int(bits.group(1)) if bits else (16 if not family else 0),
                seamless=float(seamless.group(1)) if seamless else None)
    with tempfile.TemporaryDirectory() as tmp:
        train_x, train_y = train.synth_set(os.path.join(tmp, "train"), n, seed, size, **data)
        if a.n:
            train_x, train_y = train_x[:a.n], train_y[:a.n]
            meta["training_data"] += f" (size model: the first {a.n})"
        test_x, test_y = (train.synth_set(os.path.join(tmp, "test"), int(e.group(2)), int(e.group(1)), size, **data)
                          if e else (None, None))
        cp_channels = [0, 0] if data["channels"] == 1 else [1, 2]
        params, wall_s = train.train_size_model(net, train_x, train_y, test_x, test_y, tmp, cp_channels)
    print(f"size model trained in {wall_s:.1f} s: diam_mean {params['diam_mean']}, "
          f"ymean {float(params['ymean']):.4f}")
    meta["size_model"] = train.size_model_record(params, meta["training_data"], wall_s, a.threads)

    torch.jit.save(module, out, _extra_files={"cpipc.json": json.dumps(meta)})
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    check = {"cpipc.json": ""}
    reloaded = torch.jit.load(out, map_location="cpu", _extra_files=check)
    assert json.loads(check["cpipc.json"]) == meta
    after = reloaded.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), \
        "weights changed"
    print(f"saved {out} ({os.path.getsize(out) / 1e6:.2f} MB): weights bit-identical, "
          f"size model in cpipc.json")


if __name__ == "__main__":
    main()
