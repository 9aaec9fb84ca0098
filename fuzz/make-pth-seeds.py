#!/usr/bin/env python3
# Writes small PyTorch-format (.pth) archives for the fuzz corpus, without torch: fake
# torch._utils/_rebuild_tensor_v2 and torch.*Storage globals, storages by persistent id.
import collections, io, pickle, struct, sys, types, zipfile
torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
def _rebuild_tensor_v2(*a): pass
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
_rebuild_tensor_v2.__module__ = "torch._utils"
class FloatStorage: pass
class BFloat16Storage: pass
for c in (FloatStorage, BFloat16Storage): c.__module__ = "torch"; setattr(torch, c.__name__, c)
torch._utils = utils; sys.modules["torch"] = torch; sys.modules["torch._utils"] = utils
class Storage:
    def __init__(self, key, kind, data, numel): self.key, self.kind, self.data, self.numel = key, kind, data, numel
class Tensor:
    def __init__(self, storage, offset, shape):
        self.storage, self.offset, self.shape = storage, offset, shape
    def __reduce__(self):
        stride, s = [], 1
        for d in reversed(self.shape): stride.insert(0, s); s *= d
        return (_rebuild_tensor_v2, (self.storage, self.offset, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))
class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage): return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None
def write(path, tensors, protocol):
    storages, sd = {}, collections.OrderedDict()
    for name, (kind, shape, share) in tensors.items():
        n = 1
        for d in shape: n *= d
        if share in storages:
            st = storages[share]; off = 1
        else:
            width = 4 if kind is FloatStorage else 2
            st = Storage(str(len(storages)), kind, bytes(range(256))[: (n + 1) * width] * 1, n + 1)
            st.data = (b"\x3f\x80\x00\x00" * (n + 1)) if width == 4 else (b"\x80\x3f" * (n + 1))
            storages[share] = st; off = 0
        sd[name] = Tensor(st, off, shape)
    buf = io.BytesIO(); P(buf, protocol=protocol).dump(sd)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for st in storages.values(): z.writestr("archive/data/" + st.key, st.data)
        z.writestr("archive/version", "3\n")
out = sys.argv[1]
write(out + "/f32.pth", {"emb.weight": (FloatStorage, [4, 3], "a"), "blocks.0.ln1.weight": (FloatStorage, [3], "b")}, 2)
write(out + "/bf16-shared.pth", {"head.weight": (BFloat16Storage, [2, 2], "s"), "ln_out.bias": (BFloat16Storage, [2], "s")}, 4)
