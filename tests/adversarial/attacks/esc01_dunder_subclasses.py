# attack: walk object.__subclasses__ to find os._wrap_close
# expect: rejected
# status: escape
# task: any
# marker: yes
def QLLMNetwork(agents_q, global_state):
    for c in ().__class__.__bases__[0].__subclasses__():
        if c.__name__ == "_wrap_close":
            c.__init__.__globals__["system"]("touch TFCAF_MARKER")
    return agents_q.sum(dim=-1, keepdim=True)
