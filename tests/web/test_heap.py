"""``settle_heap``: what ``outlast serve`` does to the cycle collector before taking traffic. Run in a
child interpreter, since it changes the collector for the whole process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson

PROBE = textwrap.dedent("""
    import gc, sys, weakref, orjson
    from outlast.web.server import YOUNG_GENERATION, settle_heap

    class Node:
        pass

    loaded = [Node() for _ in range(1000)]  # long-lived: frozen, no collection looks at them again
    settle_heap()
    frozen = gc.get_freeze_count()
    threshold = gc.get_threshold()
    # A reference cycle made afterwards is still garbage to the collector: it goes once enough
    # new objects have been allocated, without anyone calling gc.collect().
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    alive_before = gone() is not None
    churn = [[i] for i in range(3 * YOUNG_GENERATION)]
    print(orjson.dumps({"frozen": frozen, "loaded": len(loaded), "threshold": threshold,
                        "young": YOUNG_GENERATION, "alive_before": alive_before,
                        "collected": gone() is None}).decode())
""")


def test_settle_heap_freezes_what_is_loaded_and_still_collects_cycles() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    seen = orjson.loads(done.stdout)
    assert seen["frozen"] >= seen["loaded"]  # everything alive at settle time is out of the collector's way
    assert seen["threshold"][0] == seen["young"] > 700  # examined less often than CPython's default
    assert seen["alive_before"]  # a cycle outlives reference counting...
    assert seen["collected"]  # ...and the collector still frees it
