import time, torch, sys, statistics
torch.set_num_threads(2)
m = torch.jit.load('models/cpipc_default_cpnet.pt', map_location='cpu').eval()
torch.jit.enable_onednn_fusion(True)
f = torch.jit.freeze(m)
bs=[int(a) for a in sys.argv[1:]]
xs={b: torch.randn(b, 2, 224, 224).contiguous(memory_format=torch.channels_last) for b in bs}
res={b:[] for b in bs}
with torch.no_grad():
    for b in bs:
        for i in range(3): f(xs[b])
    for r in range(4):
        for b in bs:
            s=time.perf_counter(); f(xs[b]); res[b].append((time.perf_counter()-s)/b)
for b in bs: print(b, 'per tile med', round(statistics.median(res[b]),4), [round(v,3) for v in res[b]])
