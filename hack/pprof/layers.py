#!/usr/bin/env python3
"""Group a kube-apiserver CPU profile by layer, for bench/RESULTS.md's Operator bound.

    go tool pprof -proto apiserver-cpu-*.pprof > merged.pb.gz
    go tool pprof -traces merged.pb.gz | python3 hack/pprof/layers.py [REQUESTS]

Each sample goes to the first layer (in the order below) that any frame of its
stack belongs to: a JSON decode inside CEL validation counts as CEL, one inside
the watch cache as watch. REQUESTS, when given, adds milliseconds per request.
"""
import re, sys
cats = [
 ("GC (background mark/sweep)", [r"^runtime\.gcBgMarkWorker", r"^runtime\.bgsweep", r"^runtime\.bgscavenge"]),
 ("watch cache ingest (etcd watch decode)", [r"etcd3\.\(\*watchChan\)", r"cacher\.\(\*Cacher\)\.processEvent", r"cacher\.\(\*watchCache\)", r"etcd3\.\(\*watcher\)", r"cacher\.\(\*Cacher\)\.dispatchEvents?", r"cacher\.\(\*Cacher\)\.startCaching", r"Reflector"]),
 ("watch fan-out (encode to watchers)", [r"cacher\.\(\*cacheWatcher\)", r"handlers\.\(\*WatchServer\)", r"serveWatch", r"watchEncoder", r"handlers\.serveWatchHandler"]),
 ("CRD CEL validation", [r"apiserver/schema/cel", r"google/cel-go", r"cel-go/"]),
 ("CRD schema validation (OpenAPI, ratcheting)", [r"kube-openapi/pkg/validation", r"apiextensions-apiserver/pkg/apiserver/validation", r"customresource\.\(\*?customResourceStrategy\)\.Validate", r"customresource\.statusStrategy\.Validate", r"schema/objectmeta", r"structural", r"CorrelatedObject", r"apiserver/schema"]),
 ("managedFields / field manager", [r"managedfields", r"fieldmanager", r"structured-merge-diff"]),
 ("admission", [r"apiserver/pkg/admission", r"plugin/pkg/admission", r"admission\.", r"mutating", r"validating"]),
 ("authn/authz (x509 client cert, RBAC)", [r"authentication", r"authorization", r"rbac\.", r"authorizer"]),
 ("etcd client (storage/etcd3 writes/reads, grpc)", [r"storage/etcd3", r"go\.etcd\.io", r"google\.golang\.org/grpc"]),
 ("serialization (decode/encode, defaulting, conversion)", [r"runtime/serializer", r"encoding/json", r"sigs\.k8s\.io/json", r"gogo/protobuf", r"\.Unmarshal", r"\.Marshal", r"conversion", r"Default", r"unstructured", r"json-iterator", r"protobuf", r"transformResponseObject"]),
 ("TLS/HTTP2/net", [r"crypto/", r"golang\.org/x/net/http2", r"net/http", r"^net\.", r"internal/poll", r"syscall"]),
 ("filters, audit, apf, metrics", [r"endpoints/filters", r"server/filters", r"flowcontrol", r"audit", r"metrics", r"prometheus"]),
 ("request handlers (rest, registry)", [r"endpoints/handlers", r"registry/generic", r"registry/"]),
]
cre = [(n, [re.compile(p) for p in ps]) for n, ps in cats]
tot = {}
total = 0
def flush(val, stack):
    global total
    if val is None: return
    total += val
    for n, ps in cre:
        if any(p.search(f) for f in stack for p in ps):
            tot[n] = tot.get(n, 0) + val; return
    # leaf runtime = malloc/GC assist/scheduler not under a known layer
    tot["other (runtime, scheduler, malloc outside layers)"] = tot.get("other (runtime, scheduler, malloc outside layers)", 0) + val
def parse(s):
    m = re.match(r"\s*([\d.]+)(ns|us|µs|ms|s)\s+(.*)", s)
    if not m: return None
    mult = {"ns":1e-9,"us":1e-6,"µs":1e-6,"ms":1e-3,"s":1}[m.group(2)]
    return float(m.group(1))*mult, m.group(3).strip()
val=None; stack=[]
for line in sys.stdin:
    if line.startswith("-----------+"):
        flush(val, stack); val=None; stack=[]; continue
    if val is None:
        p = parse(line)
        if p: val, f = p; stack=[f]
    else:
        f=line.strip()
        if f: stack.append(f)
flush(val, stack)
reqs = float(sys.argv[1]) if len(sys.argv) > 1 else 0
for n, v in sorted(tot.items(), key=lambda x: -x[1]):
    extra = f"  {v*1000/reqs:6.2f} ms/request" if reqs else ""
    print(f"{v:8.2f} s {100*v/total:5.1f}%  {n}{extra}")
print(f"{total:8.2f} s total")
