import sys, time, torch, statistics
torch.set_num_threads(2)
path = sys.argv[1]; B = int(sys.argv[2]) if len(sys.argv)>2 else 8
reps = int(sys.argv[3]) if len(sys.argv)>3 else 5
torch.manual_seed(0)
x = torch.randn(B, 2, 224, 224)
_M = torch.jit.load(path); _M.eval()
def load():
    return _M
variants = {}
def v_plain():
    torch._C._set_graph_executor_optimize(False); return load(), x
def v_prof():
    torch._C._set_graph_executor_optimize(True); return load(), x
def v_freeze():
    torch._C._set_graph_executor_optimize(True); return torch.jit.freeze(load()), x
def v_ofi():
    torch._C._set_graph_executor_optimize(True); return torch.jit.optimize_for_inference(torch.jit.freeze(load())), x
def v_ofi_opt():
    torch._C._set_graph_executor_optimize(True); return torch.jit.optimize_for_inference(torch.jit.freeze(load())), x
def v_ofi_cl():
    torch._C._set_graph_executor_optimize(True); return torch.jit.optimize_for_inference(torch.jit.freeze(load())), x.contiguous(memory_format=torch.channels_last)
def v_cl():
    torch._C._set_graph_executor_optimize(False); return load(), x.contiguous(memory_format=torch.channels_last)
def v_freeze_cl():
    torch._C._set_graph_executor_optimize(True); return torch.jit.freeze(load()), x.contiguous(memory_format=torch.channels_last)
V = dict(plain=v_plain, prof=v_prof, freeze=v_freeze, ofi=v_ofi, ofi_opt=v_ofi_opt, cl=v_cl, freeze_cl=v_freeze_cl, ofi_cl=v_ofi_cl)
names = sys.argv[4].split(",") if len(sys.argv)>4 else list(V)
mods = {}
with torch.inference_mode():
    ref = None
    built={}
    for n in names:
        t0=time.perf_counter(); m, xi = V[n](); tl=time.perf_counter()-t0
        built[n]=(m,xi,tl)
    for n in names:
        m,xi,tl=built[n]
        torch._C._set_graph_executor_optimize(n.endswith("prof") or n=="ofi_opt")
        t0=time.perf_counter(); y = m(xi)[0]; tf=time.perf_counter()-t0
        mods[n]=(m,xi,tl,tf)
        if ref is None: ref = y
        print(f"{n}: load {tl:.2f}s first {tf:.2f}s maxdiff {(y-ref).abs().max().item():.2e}", flush=True)
    times = {n:[] for n in names}
    for r in range(reps):
        for n in names:
            m,xi,_,_ = mods[n]
            torch._C._set_graph_executor_optimize(n.endswith("prof") or n=="ofi_opt")
            t0=time.perf_counter(); m(xi); times[n].append(time.perf_counter()-t0)
    for n in names: print(f"{n}: median {statistics.median(times[n]):.3f}s  {sorted(times[n])}")
