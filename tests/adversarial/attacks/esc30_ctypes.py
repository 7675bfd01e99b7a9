# attack: import ctypes
# expect: rejected
# status: escape
# task: any
# marker: yes
import ctypes
def QLLMNetwork(agents_q, global_state):
    ctypes.CDLL(None).system(b"touch TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
