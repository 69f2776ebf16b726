import time, torch, sys, statistics
torch.set_num_threads(2)
m = torch.jit.load('models/cpipc_default_cpnet.pt', map_location='cpu').eval()
torch._C._jit_set_profiling_executor(False) if False else None
bs=[1,2,8]
res={}
with torch.no_grad():
  for fmt in ['nchw','cl']:
    xs={b: torch.randn(b, 2, 224, 224) for b in bs}
    if fmt=='cl': xs={b:x.contiguous(memory_format=torch.channels_last) for b,x in xs.items()}
    for b in bs:
        for i in range(2): m(xs[b])
    for r in range(3):
        for b in bs:
            s=time.perf_counter(); m(xs[b]); res.setdefault((fmt,b),[]).append((time.perf_counter()-s)/b)
for k,v in res.items(): print(k, 'per tile med', round(statistics.median(v),4))
