import time, torch, statistics, threading
m = torch.jit.load('models/cpipc_default_cpnet.pt', map_location='cpu').eval()
x = torch.randn(1, 2, 224, 224).contiguous(memory_format=torch.channels_last)
torch._C._set_graph_executor_optimize(False)
def work(n, out):
    torch.set_num_threads(1)
    with torch.inference_mode():
        for i in range(n): m(x)
torch.set_num_threads(2)
with torch.inference_mode():
    for i in range(3): m(x)
    s=time.perf_counter()
    for i in range(18): m(x)
    print('2 threads serial per tile', (time.perf_counter()-s)/18)
ts=[threading.Thread(target=work,args=(2,None)) for _ in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
s=time.perf_counter()
ts=[threading.Thread(target=work,args=(9,None)) for _ in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
print('2x1 thread parallel per tile', (time.perf_counter()-s)/18)
