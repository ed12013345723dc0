# grpo-rewards stdin/stdout harness (runs inside the sandbox; our code, not the model's).
# Kept minimal: it runs once per test. argv: stdio_harness.py HEADER(0|1) -- PROGRAM_ARGV...
import os, sys

_here = os.path.dirname(os.path.abspath(__file__))
_path = os.path.join(_here, "program.py")
with open(_path, "rb") as _f:
    _src = _f.read()
try:
    _code = compile(_src, _path, "exec")
except (SyntaxError, ValueError):
    import traceback

    traceback.print_exc()
    sys.stderr.flush()
    os.write(2, b"\n__grpo_compile_error__\n")
    os._exit(97)
_g = {"__name__": "__main__", "__file__": _path, "__builtins__": __builtins__}
if sys.argv[1] == "1":
    with open(os.path.join(_here, "header.py"), "rb") as _f:
        exec(compile(_f.read(), "<header>", "exec"), _g)
sys.argv = [_path] + sys.argv[3:]
del _here, _f, _src
exec(_code, _g)
