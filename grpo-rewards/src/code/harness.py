# grpo-rewards code-verifier harness (runs inside the sandbox; our code, not the model's).
# Reads spec.json and program.py from its own directory (stdin/stdout tests use the smaller
# stdio_harness.py). Modes:
#   call       call fn_name (global or Solution method) with args; print nonce + JSON result
#   assert     run the program, then one assert statement; print the nonce
#   humaneval  run prompt+completion, the test code, check(entry_point); print the nonce
# Success in call/assert/humaneval is proven only by the nonce line printed at the very end
# (the nonce arrives on stdin before the program runs); the caller compares results outside
# this process. Comparisons in test code are rewritten so that only plain built-in data can
# compare equal (an object whose __eq__ always returns True fails).


def _grpo_main():
    import builtins
    import os
    import sys

    _type = type
    _write = os.write
    _exit = os._exit
    _len = len
    _stdout = sys.stdout
    _stderr = sys.stderr
    here = os.path.dirname(os.path.abspath(__file__))
    # argv: harness.py MODE HEADER(0|1) -- PROGRAM_ARGV...
    mode = sys.argv[1]
    header = sys.argv[2] == "1"
    prog_argv = sys.argv[4:]
    spec = {}
    nonce = b""
    if mode != "stdio":
        # json costs ~10 ms of startup: only the modes that exchange data load it.
        import json
        import operator

        with open(os.path.join(here, "spec.json"), "rb") as f:
            spec = json.loads(f.read())
        buf = b""
        while _len(buf) < 33:
            part = os.read(0, 33 - _len(buf))
            if not part:
                break
            buf += part
        nonce = buf.strip()
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)

    def flush():
        for s in (_stdout, _stderr, sys.stdout, sys.stderr):
            try:
                s.flush()
            except BaseException:
                pass

    def finish(payload):
        flush()
        _write(1, b"\n" + nonce + b" " + payload + b"\n")
        _exit(0)

    def marker(name, code):
        flush()
        _write(2, b"\n__grpo_" + name + b"__\n")
        _exit(code)

    plain_scalars = (bool, int, float, complex, str, bytes, _type(None))
    plain_containers = (list, tuple, dict, set, frozenset)

    def is_plain(v, depth=0):
        t = _type(v)
        if t in plain_scalars:
            return True
        if depth > 200 or t not in plain_containers:
            return False
        if t is dict:
            for k, x in dict.items(v):
                if not is_plain(k, depth + 1) or not is_plain(x, depth + 1):
                    return False
            return True
        for x in v:
            if not is_plain(x, depth + 1):
                return False
        return True

    ops = {} if mode == "stdio" else {
        "Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt, "LtE": operator.le,
        "Gt": operator.gt, "GtE": operator.ge, "Is": operator.is_, "IsNot": operator.is_not,
        "In": lambda a, b: operator.contains(b, a), "NotIn": lambda a, b: not operator.contains(b, a),
    }

    def grpo_cmp(names, *operands):
        for i, name in enumerate(names):
            a, b = operands[i], operands[i + 1]
            if name not in ("Is", "IsNot") and not (is_plain(a) and is_plain(b)):
                raise AssertionError("comparison of a non-plain value (" + _type(a).__name__
                                     + " vs " + _type(b).__name__ + ")")
            r = ops[name](a, b)
            if _type(r) is not bool:
                raise AssertionError("comparison returned a non-bool")
            if not r:
                return False
        return True

    def grpo_truth(v):
        if not is_plain(v):
            raise AssertionError("assert on a non-plain value (" + _type(v).__name__ + ")")
        return bool(v)

    def transform(src, name):
        import ast

        class T(ast.NodeTransformer):
            def visit_Compare(self, node):
                self.generic_visit(node)
                names = ast.Tuple(elts=[ast.Constant(_type(o).__name__) for o in node.ops], ctx=ast.Load())
                call = ast.Call(func=ast.Name(id="__grpo_cmp", ctx=ast.Load()),
                                args=[names, node.left] + list(node.comparators), keywords=[])
                return ast.copy_location(call, node)

            def visit_Assert(self, node):
                self.generic_visit(node)
                node.test = ast.copy_location(
                    ast.Call(func=ast.Name(id="__grpo_truth", ctx=ast.Load()), args=[node.test], keywords=[]),
                    node.test)
                return node

        tree = T().visit(ast.parse(src, name))
        ast.fix_missing_locations(tree)
        return compile(tree, name, "exec")

    test_code = None
    if mode in ("assert", "humaneval"):
        try:
            test_code = transform(spec["test"], "<test>")
        except (SyntaxError, ValueError):
            import traceback
            traceback.print_exc()
            marker(b"bad_test", 96)

    prog_path = os.path.join(here, "program.py")
    with open(prog_path, "rb") as f:
        src = f.read()
    try:
        code = compile(src, prog_path, "exec")
    except (SyntaxError, ValueError):
        import traceback
        traceback.print_exc()
        marker(b"compile_error", 97)

    g = {"__name__": "solution" if mode == "call" else "__main__", "__file__": prog_path,
         "__builtins__": builtins}
    if header:
        with open(os.path.join(here, "header.py"), "rb") as f:
            exec(compile(f.read(), "<header>", "exec"), g)
    sys.argv = [prog_path] + prog_argv
    args = spec.get("args", [])

    # The untrusted program runs here. SystemExit (exit before the checks) propagates and
    # the nonce is never printed.
    exec(code, g)

    if mode == "stdio":
        return
    if mode == "call":
        fn_name = spec["fn_name"]
        sol = g.get("Solution")
        if isinstance(sol, _type) and hasattr(sol, fn_name):
            fn = getattr(sol(), fn_name)
        elif fn_name in g:
            fn = g[fn_name]
        else:
            raise NameError("function " + repr(fn_name) + " is not defined")
        result = fn(*args)
        if not is_plain(result):
            finish(b"!" + _type(result).__name__.encode("utf-8", "replace"))
        try:
            text = json.dumps(result, allow_nan=False, default=_unjson)
        except (TypeError, ValueError) as e:
            finish(b"!" + str(e).encode("utf-8", "replace")[:200])
        finish(b"=" + text.encode("utf-8", "surrogatepass"))
    t = dict(g)
    t["__grpo_cmp"] = grpo_cmp
    t["__grpo_truth"] = grpo_truth
    try:
        exec(test_code, t)
        if mode == "humaneval":
            check = t["check"]
            check(t[spec["entry_point"]])
    except AssertionError:
        import traceback
        traceback.print_exc()
        marker(b"assertion_failed", 1)
    finish(b"ok")


def _unjson(v):
    # sets, complex and bytes are plain but not JSON: reject them (expected values are JSON).
    raise TypeError("result of type " + type(v).__name__ + " is not JSON")



_grpo_main()
