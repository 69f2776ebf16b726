import time, torch, statistics
torch.set_num_threads(2)
m = torch.jit.load('models/cpipc_default_cpnet.pt', map_location='cpu').eval()
torch.jit.enable_onednn_fusion(True)
f = torch.jit.freeze(m)
x = torch.randn(1, 2, 224, 224).contiguous(memory_format=torch.channels_last)
res={'cl':[], 'fused':[]}
with torch.no_grad():
    for i in range(4): f(x)
    torch._C._set_graph_executor_optimize(False)
    for i in range(2): m(x)
    for r in range(20):
        torch._C._set_graph_executor_optimize(False)
        s=time.perf_counter(); m(x); res['cl'].append(time.perf_counter()-s)
        torch._C._set_graph_executor_optimize(True)
        s=time.perf_counter(); f(x); res['fused'].append(time.perf_counter()-s)
for k,v in res.items(): print(k, round(statistics.median(v),4))
