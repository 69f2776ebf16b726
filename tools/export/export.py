#!/usr/bin/env python3
"""Export a Cellpose checkpoint to a TorchScript file that follows cpipc's model contract.

    export.py --checkpoint CKPT --out MODEL.pt [--training-data TEXT] [--diam-mean D]
              [--tile N] [--dtype float32|bfloat16] [--attention fused|reference]
              [--size-model CKPT_size.npy] [--sidecar]

The checkpoint is a state dict as Cellpose writes it (`net.save_model`, `train_seg`
output, the built-in model files). The architecture is read from the keys:

  * CPnet (Cellpose <= 3, `resnet_torch.CPnet`): needs cellpose 3.x (3.1.1.2 is the
    last release that has it); nbase, nout and the kernel size come from the weight
    shapes, diam_mean / diam_labels from the state dict.
  * Cellpose-SAM (Cellpose 4, `vit.CPSAM`, `vit_sam.Transformer` before 4.2): needs
    cellpose >= 4; 3 input channels, fixed 256x256 tiles. Its attention is exported
    fused (sam_attention.py: the same logits, one scaled_dot_product_attention per
    block, checked against SAM's module) unless --attention reference.

The saved module's forward(x float32 [B, C, H, W]) returns (y [B, 3, H, W], style [B, 256]);
the metadata travels inside the file as the extra file `cpipc.json` (same schema as
models/cpipc_default_cpnet.json). `--size-model` adds a Cellpose 3 size model (the
`<model>_size.npy` that `train_size` writes and that ships beside cyto/cyto2/cyto3) as
cpipc.json's "size_model": {A, smean, ymean, diam_mean}, which `cpipc segment
--diameter 0` uses to estimate diameters. Every failure is one line on stderr and exit
status 1.
"""
import argparse
import hashlib
import json
import os
import sys
import warnings

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRACE_TOL = 1e-5  # traced vs eager; CPnet measures exactly 0.0 on CPU
# CP-SAM's fused attention vs SAM's: float32 outputs, relative to their largest magnitude
# (a trained CP-SAM's flows and cellprob logits run to ~10; rounding grows with them)
FUSED_TOL = 1e-5


class ExportError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ExportError("torch is not installed in this Python; use the cellpose venv "
                          "(~/.cache/cpipc/cellpose3-venv/bin/python)")
    return torch


def cellpose_version():
    try:
        import cellpose
    except ImportError:
        return None
    return getattr(cellpose, "version", None) or "unknown"


def major(version):
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return -1


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_state_dict(path):
    """Cellpose saves `torch.save(net.state_dict())`; read it the way CPnet.load_model does."""
    torch = _import_torch()
    if not os.path.isfile(path):
        raise ExportError(f"checkpoint not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a random blob raises UnpicklingError, RuntimeError, EOFError...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"{path} is not a PyTorch state-dict checkpoint ({first})")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]  # a training-loop wrapper around the state dict
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise ExportError(f"{path} does not hold a state dict (name -> tensor)")
    # DataParallel / DistributedDataParallel prefix every key with "module."
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def detect(sd):
    """Architecture from the key names alone (no code from the checkpoint is run)."""
    if "downsample.down.res_down_0.proj.1.weight" in sd and "output.2.weight" in sd:
        return "CPnet"
    if "W2" in sd and "encoder.cls_token" in sd:
        return "CPDINO"
    if "W2" in sd and "encoder.patch_embed.proj.weight" in sd:
        return "CPSAM"
    sample = ", ".join(list(sd)[:3])
    raise ExportError(f"unrecognised checkpoint: neither CPnet nor Cellpose-SAM keys "
                      f"(first keys: {sample})")


def cpnet_shape(sd):
    """nbase, nout, kernel size from the weight shapes (CPnet has no stored config)."""
    nbase, n = [], 0
    while f"downsample.down.res_down_{n}.proj.1.weight" in sd:
        w = sd[f"downsample.down.res_down_{n}.proj.1.weight"]  # [out, in, 1, 1]
        if w.dim() != 4:
            raise ExportError("3D CPnet checkpoints (conv_3D) are not supported")
        if n == 0:
            nbase.append(int(w.shape[1]))
        nbase.append(int(w.shape[0]))
        n += 1
    nout = int(sd["output.2.weight"].shape[0])
    sz = int(sd["downsample.down.res_down_0.conv.conv_0.2.weight"].shape[-1])
    return nbase, nout, sz


def build_cpnet(sd):
    torch = _import_torch()
    version = cellpose_version()
    try:
        from cellpose.resnet_torch import CPnet
    except ImportError:
        raise ExportError(f"a CPnet checkpoint needs cellpose 3.x (found "
                          f"{version or 'no cellpose'}): use ~/.cache/cpipc/cellpose3-venv")
    nbase, nout, sz = cpnet_shape(sd)
    if nbase[-1] != 256:
        # Cellpose's run_net (and the C++ side) expect 256 style values
        raise ExportError(f"nbase {nbase}: the deepest level must have 256 channels "
                          f"(style width), got {nbase[-1]}")
    # mkldnn=False: mkldnn tensors cannot be traced; max_pool=True as CellposeModel builds it
    net = CPnet(nbase, nout, sz=sz, mkldnn=False, max_pool=True)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    # old checkpoints may lack diam_labels; anything else missing means a wrong file
    missing = [k for k in missing if k != "diam_labels"]
    if missing or unexpected:
        raise ExportError(f"CPnet {nbase} does not match the checkpoint: missing "
                          f"{missing[:3]}, unexpected {unexpected[:3]}")
    if "diam_labels" not in sd:
        net.diam_labels.data[:] = net.diam_mean.data
    info = {"architecture": "CPnet", "parameters": sum(p.numel() for p in net.parameters()),
            "nbase": nbase, "input_channels": nbase[0],
            "channel_convention": "cellpose3 [seg, nuc]", "nout": nout,
            "diam_mean": float(net.diam_mean.item()),
            "diam_labels": float(net.diam_labels.item()),
            # 3 max-pools for the default 4 levels: H and W must divide by this
            "size_multiple": 2 ** (len(nbase) - 2), "cellpose_version": version}
    return net, info


def fuse_attention(net, torch):
    """SAM's attention through scaled_dot_product_attention (sam_attention.py), checked
    in float32 against the module it replaces; returns (blocks swapped, max |diff|)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from sam_attention import fuse
    net.eval()
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = net(x)[:2]
        try:
            swapped = fuse(net.encoder)
        except (AttributeError, ImportError) as e:  # an encoder laid out unlike Cellpose 4.2's
            print(f"export: SAM's attention kept (cannot fuse this encoder: {e})", file=sys.stderr)
            return 0, None
        after = net(x)[:2]
    diff = max((a - b).abs().max().item() for a, b in zip(after, before))
    scale = max(1.0, max(b.abs().max().item() for b in before))
    if not diff <= FUSED_TOL * scale:  # also catches NaN
        raise ExportError(f"fused attention differs from SAM's by {diff:g} (> {FUSED_TOL:g} x "
                          f"{scale:g}, the outputs' largest magnitude); export with --attention reference")
    return swapped, diff


def build_cpsam(sd, dtype, attention):
    torch = _import_torch()
    version = cellpose_version()
    if version is None or major(version) < 4:
        raise ExportError(f"a Cellpose-SAM checkpoint needs cellpose>=4 (found "
                          f"{version or 'no cellpose'}): run with "
                          f"~/.cache/cpipc/cellpose-venv/bin/python")
    try:
        from cellpose.vit import CPSAM as Net  # 4.2 and later
    except ImportError:
        try:
            from cellpose.vit_sam import Transformer as Net  # 4.0, 4.1
        except ImportError as e:
            raise ExportError(f"cellpose {version} has neither vit.CPSAM nor "
                              f"vit_sam.Transformer ({e})")
    # build in float32 (what the file stores); bfloat16 is applied by the wrapper below
    net = Net()
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ExportError(f"Cellpose-SAM does not match the checkpoint: missing "
                          f"{missing[:3]}, unexpected {unexpected[:3]}")
    params = sum(p.numel() for p in net.parameters())
    fused, diff = fuse_attention(net, torch) if attention == "fused" else (0, None)
    net.to(dtype)
    info = {"architecture": "CPSAM", "parameters": params, "nbase": None, "input_channels": 3,
            "attention": (f"fused: scaled_dot_product_attention in {fused} blocks, max |diff| "
                          f"{diff:.3g} against SAM's (float32)") if fused else "reference",
            "channel_convention": "cellpose4 first-three", "nout": int(net.nout),
            # Cellpose 4 ignores diam_mean: it rescales by 30 / diameter
            "diam_mean": float(net.diam_mean.float().item()),
            "diam_labels": float(net.diam_labels.float().item()),
            "patch_size": int(net.ps), "size_multiple": 256, "cellpose_version": version}
    return net, info


def wrapper(net, dtype):
    torch = _import_torch()

    class Exported(torch.nn.Module):
        """Contract: float32 in, (y, style) float32 out. CPnet returns (y, style, T0);
        Cellpose 4 runs the ViT in bfloat16 by default, so cast around it when asked."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x.to(dtype))
            return out[0].float(), out[1].float()

    return Exported(net).eval()


def trace_and_check(module, channels, tile, fixed_tile):
    """Trace at 1 x C x tile x tile; compare with eager at two sizes (or batches)."""
    torch = _import_torch()
    gen = torch.Generator().manual_seed(0)
    shapes = [(1, channels, tile, tile)]
    # CPnet is fully convolutional: check a second, non-square size; the ViT has a fixed
    # position embedding, so only the batch size may change
    shapes.append((2, channels, tile, tile) if fixed_tile
                  else (2, channels, tile + 32, tile + 96))
    with torch.no_grad(), warnings.catch_warnings():
        # SAM's relative-position code turns sizes into Python ints; harmless here because
        # its tile size is fixed, and the eager comparison below would catch a wrong trace
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, torch.randn(*shapes[0], generator=gen),
                                 check_trace=False)
        diffs = {}
        for shape in shapes:
            x = torch.randn(*shape, generator=gen)
            (ye, se), (yt, st) = module(x), traced(x)
            if tuple(yt.shape) != (shape[0], 3, shape[2], shape[3]) or \
                    tuple(st.shape) != (shape[0], 256):
                raise ExportError(f"traced output shapes {tuple(yt.shape)}, {tuple(st.shape)} "
                                  f"for input {shape} break the contract")
            diffs["x".join(map(str, shape))] = max((ye - yt).abs().max().item(),
                                                   (se - st).abs().max().item())
    return traced, diffs


def size_model_meta(params, source):
    """cpipc.json's "size_model" from a Cellpose 3 size model dict (SizeModel.params:
    A, smean, ymean, diam_mean). Numbers are written exactly (JSON doubles)."""
    import numpy as np
    try:
        A = np.asarray(params["A"], np.float64).ravel()
        smean = np.asarray(params["smean"], np.float64).ravel()
        ymean = float(np.asarray(params["ymean"]).reshape(()))
        diam_mean = float(np.asarray(params["diam_mean"]).reshape(()))
    except (KeyError, TypeError, ValueError) as e:
        raise ExportError(f"size model: expected A, smean, ymean and diam_mean ({e})")
    if A.size == 0 or A.size != smean.size:
        raise ExportError(f"size model: A ({A.size}) and smean ({smean.size}) must have the style's length")
    if not (np.isfinite(A).all() and np.isfinite(smean).all() and np.isfinite(ymean)
            and np.isfinite(diam_mean) and diam_mean > 0):
        raise ExportError("size model: non-finite values or diam_mean <= 0")
    return {"A": A.tolist(), "smean": smean.tolist(), "ymean": ymean, "diam_mean": diam_mean,
            "source": source}


def load_size_model(path):
    """A `_size.npy` as Cellpose loads it: np.load(allow_pickle=True).item() (a pickled
    dict: only load files you trust, as with any Cellpose model file)."""
    import numpy as np
    try:
        params = np.load(path, allow_pickle=True).item()
    except (OSError, ValueError, AttributeError) as e:
        raise ExportError(f"{path}: not a Cellpose size model (_size.npy): {e}")
    if not isinstance(params, dict):
        raise ExportError(f"{path}: not a Cellpose size model (expected a dict)")
    return size_model_meta(params, f"{os.path.basename(path)} sha256 {sha256(path)}")


def export(a):
    torch = _import_torch()
    torch.manual_seed(0)
    sd = load_state_dict(a.checkpoint)
    size_meta = load_size_model(a.size_model) if a.size_model else None  # fail before tracing
    arch = detect(sd)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[a.dtype]
    if arch == "CPDINO":
        raise ExportError("Cellpose-DINO checkpoints (encoder.cls_token) are not supported; "
                          "cpipc exports CPnet and Cellpose-SAM")
    if arch == "CPnet":
        if dtype != torch.float32:
            raise ExportError("--dtype bfloat16 is for Cellpose-SAM only")
        net, info = build_cpnet(sd)
        tile = a.tile or 224
        if tile % info["size_multiple"]:
            raise ExportError(f"--tile {tile} is not a multiple of {info['size_multiple']}")
    else:
        net, info = build_cpsam(sd, dtype, a.attention)
        tile = a.tile or 256
        if tile != 256:
            raise ExportError("Cellpose-SAM runs on 256x256 tiles only (fixed position "
                              "embedding); drop --tile")
    net.eval()
    if a.diam_mean is not None:
        info["diam_mean"] = float(a.diam_mean)

    module = wrapper(net, dtype)
    traced, diffs = trace_and_check(module, info["input_channels"], tile,
                                    fixed_tile=arch == "CPSAM")
    worst = max(diffs.values())
    if not worst <= TRACE_TOL:  # also catches NaN
        raise ExportError(f"traced module differs from eager by {worst:g} (> {TRACE_TOL:g})")

    meta = {
        "architecture": info["architecture"],
        "nbase": info["nbase"],
        "input_channels": info["input_channels"],
        "channel_convention": info["channel_convention"],
        "nout": info["nout"],
        "diam_mean": info["diam_mean"],
        "diam_labels": info["diam_labels"],
        "tile": tile,
        "size_multiple": info["size_multiple"],
        "dtype": a.dtype,
        "parameters": info["parameters"],
        "cellpose_version": info["cellpose_version"],
        "torch_version": torch.__version__,
        "source_checkpoint": f"{os.path.basename(a.checkpoint)} sha256 {sha256(a.checkpoint)}",
        "training_data": a.training_data,
        "exported_by": "tools/export/export.py",
        "trace_check_max_abs_diff": diffs,
    }
    if "patch_size" in info:
        meta["patch_size"] = info["patch_size"]
    if "attention" in info:
        meta["attention"] = info["attention"]
    if size_meta:
        meta["size_model"] = size_meta
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    torch.jit.save(traced, a.out, _extra_files={"cpipc.json": json.dumps(meta)})
    if a.sidecar:
        with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")

    # reload as a consumer would: the file alone must carry the metadata and the weights
    extra = {"cpipc.json": ""}
    reloaded = torch.jit.load(a.out, map_location="cpu", _extra_files=extra)
    if json.loads(extra["cpipc.json"]) != meta:
        raise ExportError(f"{a.out}: cpipc.json did not survive the round trip")
    x = torch.randn(1, info["input_channels"], tile, tile,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        if not all(torch.equal(r, t) for r, t in zip(reloaded(x), traced(x))):
            raise ExportError(f"{a.out}: reloaded module gives different outputs")
    return meta


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="Cellpose state-dict checkpoint")
    p.add_argument("--out", required=True, help="TorchScript file to write (.pt)")
    p.add_argument("--training-data", default="unknown",
                   help="free text recorded in cpipc.json (what the net was trained on)")
    p.add_argument("--diam-mean", type=float, default=None,
                   help="override diam_mean (Cellpose's built-in models keep it in code)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size to trace at and record (CPnet: 224; CP-SAM: 256 only)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="weights precision (bfloat16 = Cellpose 4's default, CP-SAM only)")
    p.add_argument("--attention", choices=["fused", "reference"], default="fused",
                   help="CP-SAM: SAM's attention through one scaled_dot_product_attention per "
                        "block (fused, checked against SAM's) or as SAM writes it (reference)")
    p.add_argument("--size-model", default=None, metavar="SIZE_NPY",
                   help="Cellpose 3 size model (<model>_size.npy) for diameter estimation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sidecar", action="store_true",
                   help="also write the metadata next to the .pt as <out>.json")
    a = p.parse_args(argv)
    try:
        torch = _import_torch()
        torch.set_num_threads(a.threads)
        meta = export(a)
    except ExportError as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        return 1
    print(f"exported {meta['architecture']} ({meta['parameters']:,} parameters) to {a.out}; "
          f"trace check max |diff| {max(meta['trace_check_max_abs_diff'].values()):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
