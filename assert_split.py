"""Assert tests that compute their expected values: the test code and the answer in two processes.

Owns: the *split* harness (``SPLIT_MAIN``) and the lowering of an assert test to it. The harness
forks before it reads its stdin: the child becomes the answer's process (it runs the answer as
``__main__``, with an empty stdin, and then serves calls); the parent, made non-dumpable first so
that the child can read nothing of its memory, then reads the secret and the test code and runs
the test against proxies of the answer's top-level names. A call sends its arguments to the
child as type-tagged data (``literal_asserts.ENCODER``) and gets the result back the same way: a
builtin value (a copy; list, dict, set and bytearray arguments the answer changed are changed in
place on the test's side too), or a *handle* for a function, a class, an iterator or an object
the answer made (calls, attributes, iteration, ``len``, truth, subscripts, ``isinstance`` are
served by the child; a comparison is the answer's only between two handles, identity against a
value of the test's). An exception the answer raises is raised again in the test (builtin types
as themselves, others as a per-class stand-in of the same name and nearest builtin base), with
its args and attributes and the answer's traceback on stderr if it ends the test.

The child runs the answer, so every message it sends may be forged: the parent filters the names
itself (none shadowing a builtin or a header name), imports no module it names beyond loaded ones
and top-level ones of the standard library's directory, asks no protocol attribute of a handle
(``__array__``, ``__deepcopy__``), and decodes nothing it could not send back. So no object of the
answer's ever runs in the process that compares: no ``__eq__`` that says yes to everything, no
forked spy, no frame walk or patched builtin reaches the expected values, and the completion proof
(as in ``problem_kinds``' in-process harness) is made where the answer cannot read the secret.
Only a value of the *test's* own that cannot be sent (a lambda, an instance of a class the test
defines; ``_lb_refuse``) or a machine where the harness cannot fork sends the toolkit a second
secret-derived frame asking for the in-process harness (``problem_kinds.run_kind_test`` then runs
that test again in process): anything the answer made (a module, a list nested too deeply, an
exception) fails the call instead, so nothing the answer sends can ask for it. The rarely needed
parts (``_RARE``) are compiled on first use: every test compiles the whole program.
"""

from __future__ import annotations

# The harness's rarely needed parts, compiled only when a run needs them (``_lb_rare``): exceptions,
# failures, protocol operations of handles, modules, values sent back.
_RARE = r'''
def _lb_raised(exc, encode=None):
    """An exception of the answer's, as a message for the test's process (its args as values when
    they can cross: ``KeyError('k')`` stays ``'k'``, ``ValueError(1, 2)`` keeps both)."""
    import builtins, traceback
    kind = type(exc)
    try:
        message = str(exc)[:2000]
    except BaseException:
        message = ""
    try:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        text = "".join(traceback.format_exception(kind, exc, tb))[-4000:]
    except BaseException:
        text = ""
    code = getattr(exc, "code", None) if kind is SystemExit else None
    base = next((c.__name__ for c in kind.__mro__ if getattr(builtins, c.__name__, None) is c), "Exception")
    try:
        args = encode(tuple(exc.args)) if encode is not None else None
    except BaseException:
        args = None
    try:  # the attributes it set (``self.code = code``)
        own = {k: v for k, v in vars(exc).items() if type(k) is str and not k.startswith("_") and k != "args"}
        attrs = encode(own) if encode is not None and own else None
    except BaseException:
        attrs = None
    return {"args": args, "attrs": attrs, "class": id(kind), "raised": kind.__name__, "builtin": getattr(builtins, kind.__name__, None) is kind, "base": base,
            "message": message, "traceback": text,
            "code": code if code is None or type(code) in (int, str) else None}

def _lb_answer_resolve(objects, tag, rest):
    """A handle the test sends back, or a module or builtin of the test's, here in the answer's process."""
    import builtins, importlib
    if tag == "ref":
        return objects[rest[0]]
    if tag == "module":
        return importlib.import_module(rest[0])
    if tag == "builtin":
        return getattr(builtins, rest[0])
    if tag == "global":  # a class or function of a module, sent by name
        target = importlib.import_module(rest[0])
        for part in str(rest[1]).split("."):
            target = getattr(target, part)
        return target
    raise ValueError(f"unknown tag {tag!r}")

def _lb_operate(target, op, name, args):
    """What a handle's protocol method asks of the answer's object (``_LbRemote``)."""
    import operator
    if op == "setattr":
        return setattr(target, name, args[0])
    if op == "compare":  # two of the answer's objects: its own == or < decides, as in Python
        return getattr(operator, name)(target, args[0])
    if op == "getitem":
        return target[args[0]]
    if op == "isinstance":
        return isinstance(args[0], target)
    if op == "issubclass":
        return issubclass(args[0], target)
    import copy
    unary = {"iter": iter, "next": next, "len": len, "bool": bool, "copy": copy.copy, "deepcopy": copy.deepcopy}
    return unary[op](target)

def _lb_exception_class(ident, name, base):
    """The test's stand-in for an exception class of the answer's: same name, nearest builtin base
    (``except Oops:`` in the test catches the answer's ``Oops``; not its own hierarchy)."""
    import builtins
    base = getattr(builtins, str(base), Exception)
    if not (isinstance(base, type) and issubclass(base, BaseException)):
        base = Exception
    made = _LB_CLASSES.get(ident) if type(ident) is int else None
    if made is None:
        made = type(str(name), (base,), {"__module__": "__main__", "_lb_answers": True})
        if type(ident) is int:
            _LB_CLASSES[ident] = made
    return made

def _lb_rebuild(exc_data, decode):
    import builtins
    name = exc_data["raised"]
    kind = getattr(builtins, name, None) if exc_data["builtin"] else None
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        kind = _lb_exception_class(exc_data.get("class"), name, exc_data.get("base"))
    if kind is SystemExit:
        error = SystemExit(exc_data["code"])
    else:
        try:
            args = decode(exc_data["args"]) if exc_data.get("args") is not None else (exc_data["message"],)
            error = kind(*args) if type(args) is tuple else kind(exc_data["message"])
        except BaseException:
            try:
                error = kind(exc_data["message"])
            except BaseException:
                error = Exception(exc_data["message"])
    try:
        attrs = decode(exc_data["attrs"]) if exc_data.get("attrs") is not None else {}
        for key, value in attrs.items():
            if type(key) is str and not key.startswith("_") and key != "args":
                setattr(error, key, value)
    except Exception:
        pass
    error._lb_remote = exc_data["traceback"]
    return error

def _lb_report_split(exc):
    """The traceback Python would print: the test's frames (not the harness's), then the answer's
    frames from its own process."""
    import sys, traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename not in ("main.py", "<harness>")]
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    remote = getattr(exc, "_lb_remote", None)
    head = "Traceback (most recent call last):\n"
    if remote and remote.startswith(head):
        text += remote[len(head):]
    else:
        text += "".join(traceback.format_exception_only(type(exc), exc))
    _lb_flush()
    sys.stderr.write(text)
    _lb_flush()

def _lb_own_module(name):
    """The test's own copy of a module the answer imported: one already loaded here, or a top-level
    module of the standard library. Never a submodule not yet loaded (importing
    ``unittest.__main__`` would discover and run test files of the answer's work dir) nor one whose
    import acts (``this``, ``antigravity``), never ``__main__``."""
    import importlib, sys
    if type(name) is not str or "__main__" in name.split("."):
        raise ValueError(f"module {name!r} is not imported here")
    if name in sys.modules:
        return sys.modules[name]
    if "." in name or name not in getattr(sys, "stdlib_module_names", ()) or name in ("this", "antigravity", "__hello__", "__phello__"):
        raise ValueError(f"module {name!r} is not imported here")
    import importlib.util, sysconfig
    spec = importlib.util.find_spec(name)  # a top-level name: finding it runs nothing
    where = tuple(sysconfig.get_paths()[k].rstrip("/") + "/" for k in ("stdlib", "platstdlib"))
    origin = getattr(spec, "origin", None)
    if spec is None or not (origin in ("built-in", "frozen") or (type(origin) is str and origin.startswith(where))):
        raise ValueError(f"module {name!r} is not the standard library's here")  # a file some writable dir holds
    return importlib.import_module(name)

def _lb_test_other(value):
    """The data for a value of the test's of no builtin type: a handle goes back as itself, a
    module or builtin by name; an exception or exception class cannot cross (it may be the answer's:
    no fallback); anything else is the test's own (``_lb_refuse``)."""
    import builtins
    if type(value) is _LbRemote:
        return ["ref", value._lb_id]
    if type(value) is type(builtins):
        return ["module", value.__name__]
    if type(value) is range:
        return ["range", *(format(v, "x") for v in (value.start, value.stop, value.step))]
    name = getattr(value, "__name__", None)
    if type(name) is str and getattr(builtins, name, None) is value:
        return ["builtin", name]
    if isinstance(value, BaseException) or (isinstance(value, type) and issubclass(value, BaseException)):
        # the answer's (raised again here) or the harness's (its process ended): not the test's own
        raise TypeError(f"an exception ({getattr(value, '__name__', type(value).__name__)}) cannot be sent to the answer")
    found = _lb_global_name(value)
    if found is not None:  # a class or function of a module (``collections.OrderedDict``): by name
        return ["global", *found]
    return _lb_refuse(value)

def _lb_global_name(value):
    """(module, qualified name) of a class or function that a loaded module (not ``__main__``)
    holds under that name, so the answer's process can import the same one; else None. Such values
    may come from a module the answer returned: sending them by name keeps them off the fallback."""
    import sys
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if type(module) is not str or type(qualname) is not str or module == "__main__" or module not in sys.modules:
        return None
    target = sys.modules[module]
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return (module, qualname) if target is value else None
'''

SPLIT_MAIN = "\n_LB_RARE = " + repr(_RARE) + "\n" + r'''
def _lb_rare(name):
    """A function of ``_LB_RARE``, compiled on first use: every test compiles the program, and most
    never raise, fail, import or send a handle back."""
    space = globals()
    if name not in space:
        exec(compile(_LB_RARE, "<harness>", "exec"), space)
    return space[name]


class _LbNeedsInProcess(BaseException):
    """A value of the test's own that cannot be sent to the answer's process."""


def _lb_decoder(resolve):
    """``decode(data)``: the value of type-tagged data; ``resolve(tag, rest)`` for handles and refs."""
    from decimal import Decimal
    from fractions import Fraction
    scalars = {"bool": lambda v: v is True, "float": float, "str": str, "int": lambda v: int(v, 16),
               "bytes": bytes.fromhex, "bytearray": bytearray.fromhex}
    sequences = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}

    def decode(data, depth=0):
        if depth > 250:
            raise ValueError("nested too deeply")
        tag, *rest = data
        if tag == "none":
            return None
        if tag in scalars:
            return scalars[tag](*rest)
        if tag == "complex":
            return complex(float(rest[0]), float(rest[1]))
        if tag in sequences:
            return sequences[tag](decode(item, depth + 1) for item in rest[0])
        if tag == "dict":
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in rest[0]}
        if tag == "fraction":
            return Fraction(int(rest[0], 16), int(rest[1], 16))
        if tag == "decimal":
            return Decimal(rest[0])
        if tag == "range":  # only the test sends one (the answer's ranges are handles)
            return range(*(int(v, 16) for v in rest))
        return resolve(tag, rest)

    return decode


def _lb_channel(sock):
    """(send, receive) of length-prefixed JSON messages on a stream socket; receive gives None at EOF."""
    import json, struct
    dumps, loads, pack, unpack = json.dumps, json.loads, struct.pack, struct.unpack

    def exact(size):
        chunks, got = [], 0
        while got < size:
            chunk = sock.recv(min(size - got, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def send(message):
        data = dumps(message).encode("ascii")
        sock.sendall(pack("<Q", len(data)) + data)

    def receive():
        head = exact(8)
        body = exact(unpack("<Q", head)[0]) if head is not None else None
        return loads(body) if body is not None else None

    return send, receive


def _lb_flush():
    import sys
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass



def _lb_answer_side(sock, seed):
    """The answer's process: run it, say which names it defined, then serve calls until EOF."""
    import builtins, io, os, sys
    null = os.open(os.devnull, os.O_RDONLY)  # before any of the answer runs: stdin is the test's
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    send, receive = _lb_channel(sock)
    objects = {}

    def handle(value):
        if type(value) is type(sys):  # a module: the test's process imports its own copy (by name)
            return ["module", value.__name__]
        if isinstance(value, type) and issubclass(value, BaseException):  # a stand-in there (_lb_exception_class)
            if getattr(builtins, value.__name__, None) is value:
                return ["builtin", value.__name__]
            base = next((c.__name__ for c in value.__mro__ if getattr(builtins, c.__name__, None) is c), "Exception")
            return ["exception-class", id(value), value.__name__, base]
        # anything else stays in the answer's process and crosses as a handle: a generator, a range,
        # a deque, a numpy array (iterated there), a re.Match, a date, a Path (their methods and
        # attributes are reached there; compared with a value of the test's, a handle is never equal)
        objects[id(value)] = value
        return ["handle", id(value), getattr(value, "__name__", None) if callable(value) else None,
                type(value).__name__]

    encode = _lb_encoder(handle)
    decode = _lb_decoder(lambda tag, rest: _lb_rare("_lb_answer_resolve")(objects, tag, rest))
    module = _lb_namespace("__main__", seed)
    sys.modules["__main__"] = module
    try:
        exec(compile(_LB_ANSWER, "solution.py", "exec"), module.__dict__)
    except Exception as exc:  # SystemExit passes: the caller exits with its code
        _lb_report(exc)
        _lb_flush()
        os._exit(1)
    names = {}
    shadowed = set(dir(__import__("builtins"))) | set(seed)
    for name, value in list(module.__dict__.items()):
        if name.startswith("__") or name in shadowed:  # the test's len, all, math stay its own
            continue
        try:
            names[name] = encode(value)
        except Exception:  # a module or another object the test could not use from its process
            pass
    _lb_flush()
    send({"ready": names})
    while True:
        message = receive()
        if message is None:
            break
        send(_lb_serve(message, objects, encode, decode))
    _lb_flush()
    os._exit(0)



def _lb_serve(message, objects, encode, decode):
    args = []
    try:
        target, op = objects[message["id"]], message["op"]
        if op == "getattr":
            value = getattr(target, message["name"])
        else:
            args = [decode(a) for a in message["args"]]
            if op == "call":
                value = target(*args, **{k: decode(v) for k, v in message["kwargs"].items()})
            else:
                value = _lb_rare("_lb_operate")(target, op, message.get("name"), args)
    except BaseException as exc:
        _lb_flush()
        return _lb_rare("_lb_raised")(exc, encode)
    _lb_flush()
    try:
        after = [encode(a) if type(a) in (list, dict, set, bytearray) else None for a in args]
        return {"value": encode(value), "after": after}
    except BaseException as exc:
        return {"unencodable": f"{type(value).__name__}: {type(exc).__name__}: {exc}"[:500]}



class _LbRemote:
    """The test's view of a function, class, iterator or object of the answer's: calls, attribute
    reads and writes, iteration, ``len``, truth, subscripts and ``isinstance`` go to the answer's
    process. A comparison is the answer's only between two of its own objects: against a value of
    the test's it is identity (nothing of the answer's decides it, and the value is not sent)."""

    __slots__ = ("_lb_id", "_lb_name", "_lb_call")

    def __init__(self, ident, name, call):
        object.__setattr__(self, "_lb_id", ident)
        object.__setattr__(self, "_lb_name", name)
        object.__setattr__(self, "_lb_call", call)

    def __call__(self, *args, **kwargs):
        return self._lb_call({"op": "call", "id": self._lb_id}, args, kwargs)

    def _lb_op(self, op, *args, name=None):
        return self._lb_call({"op": op, "id": self._lb_id, "name": name}, args, {})

    def __setattr__(self, name, value):
        self._lb_op("setattr", value, name=str(name))

    def __iter__(self):
        return self._lb_op("iter")

    def __next__(self):
        return self._lb_op("next")

    def __len__(self):
        return self._lb_op("len")

    def __bool__(self):
        return self._lb_op("bool")

    def __getitem__(self, key):
        return self._lb_op("getitem", key)

    def __copy__(self):
        return self._lb_op("copy")

    def __deepcopy__(self, memo):
        return self._lb_op("deepcopy")

    def __instancecheck__(self, value):  # no object of the test's is an instance of the answer's class
        return type(value) is _LbRemote and self._lb_op("isinstance", value) is True

    def __subclasscheck__(self, value):
        return type(value) is _LbRemote and self._lb_op("issubclass", value) is True

    def _lb_compare(self, name, other):
        if type(other) is not _LbRemote:
            return NotImplemented
        return self._lb_op("compare", other, name=name)

    def __eq__(self, other):
        return self._lb_compare("eq", other)

    def __ne__(self, other):
        return self._lb_compare("ne", other)

    def __lt__(self, other):
        return self._lb_compare("lt", other)

    def __le__(self, other):
        return self._lb_compare("le", other)

    def __gt__(self, other):
        return self._lb_compare("gt", other)

    def __ge__(self, other):
        return self._lb_compare("ge", other)

    def __hash__(self):
        return hash(("_lb", self._lb_id))

    def __getattr__(self, name):
        # Not the protocol attributes that libraries look up on any object (``__deepcopy__``,
        # ``__setstate__``, numpy's ``__array_interface__``...): the answer's process would then
        # decide how this process builds values, or be handed values of the test's.
        if name.startswith("_lb_") or (name.startswith("__") and name not in _LB_FORWARDED):
            raise AttributeError(name)
        return self._lb_call({"op": "getattr", "id": self._lb_id, "name": name}, (), {})

    def __repr__(self):
        return f"<{self._lb_name} of the answer>"


_LB_FORWARDED = frozenset({"__name__", "__qualname__", "__doc__", "__module__", "__dict__", "__defaults__",
                           "__kwdefaults__", "__annotations__"})


_LB_CLASSES = {}  # the answer's exception classes, here: one per class of the answer's (by its id there)



def _lb_caller(send, receive, encode, decode):
    """``call(message, args, kwargs)``: one request to the answer's process, its result here.

    Only a value of the test's own that cannot be sent (``_lb_refuse``) asks for the in-process
    harness; anything the answer could have made (a list nested too deeply, an exception of its
    own) fails the call here instead, so the answer can never choose the fallback."""
    import threading
    in_place = (list, dict, set, bytearray)
    lock = threading.RLock()  # a test calling from threads: one request and its reply at a time

    def call(message, args, kwargs):
        with lock:
            return exchange(message, args, kwargs)

    def exchange(message, args, kwargs):
        asked = len(_LB_NEEDS)
        try:
            message["args"] = [encode(a) for a in args]
            message["kwargs"] = {str(k): encode(v) for k, v in kwargs.items()}
        except (TypeError, ValueError) as exc:
            if len(_LB_NEEDS) > asked:
                raise _LbNeedsInProcess() from None
            raise TypeError(f"an argument cannot be sent to the answer: {exc}") from None
        send(message)
        reply = receive()
        if reply is None:
            raise RuntimeError("the answer's process ended during a call")
        if "raised" in reply:
            raise _lb_rare("_lb_rebuild")(reply, decode)
        if "unencodable" in reply:
            raise TypeError("the answer returned a value that cannot leave its process: " + reply["unencodable"])
        for arg, data in zip(args, reply["after"]):
            if data is not None and type(arg) in in_place:
                new = decode(data)
                if new != arg:
                    if type(arg) in (list, bytearray):
                        arg[:] = new
                    else:
                        arg.clear()
                        arg.update(new)
        return decode(reply["value"])

    return call



def _lb_test_side(sock, pid, seed):
    import ast, hashlib, linecache, os, signal, sys
    _lb_safe_path()  # first: the answer's process runs from now on, and can write files
    sha256, write, run, settrace, setprofile = hashlib.sha256, os.write, exec, sys.settrace, sys.setprofile
    secret, _, test = _lb_take_stdin().partition(b"\n")  # only now: the answer's process never had them
    test = test.decode("utf-8")
    digest = sha256(test.encode("utf-8")).hexdigest().encode("ascii")
    proof = sha256(secret.strip() + b":" + digest).hexdigest()
    fallback = sha256(secret.strip() + b":in-process:" + digest).hexdigest()
    del secret
    lines = test.splitlines(True)
    try:
        code, error = _lb_test_code(test, ast), None
    except SyntaxError as exc:
        code, error = None, exc
    del test

    def frame(text):
        _lb_end(pid)
        data = ("\n" + _LB_PROOF + text + "\n").encode("ascii")
        while data:
            data = data[write(1, data):]

    send, receive = _lb_channel(sock)
    ready = receive()
    if ready is None:  # the answer crashed or exited before its names were ready: as it ended
        _lb_flush()
        status = os.waitpid(pid, 0)[1]
        if os.WIFSIGNALED(status):
            os.kill(os.getpid(), os.WTERMSIG(status))
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
    box = []

    def resolve(tag, rest):
        if tag == "handle":
            return _LbRemote(rest[0], rest[1] or rest[2], box[0])
        if tag == "module":
            return _lb_rare("_lb_own_module")(rest[0])
        if tag == "exception-class":
            return _lb_rare("_lb_exception_class")(rest[0], rest[1], rest[2])
        if tag == "builtin":  # only a builtin exception class (never ``eval`` or ``open``)
            kind = getattr(__import__("builtins"), str(rest[0]), None)
            if isinstance(kind, type) and issubclass(kind, BaseException):
                return kind
        raise ValueError(f"unknown tag {tag!r}")

    decode = _lb_decoder(resolve)
    encode = _lb_encoder(lambda value: _lb_rare("_lb_test_other")(value))
    box.append(_lb_caller(send, receive, encode, decode))
    module = _lb_namespace("__main__", seed)
    # the answer's process may send any names: never one that shadows a builtin or a name of the
    # import header (``range``, ``all``, ``__builtins__``, ``math``), whatever it says
    shadowed = set(dir(__import__("builtins"))) | set(seed)
    for name, data in ready["ready"].items():
        if type(name) is not str or name.startswith("__") or name in shadowed:
            continue
        try:
            module.__dict__[name] = decode(data)
        except Exception:  # a module this process will not import: the test does without it
            pass
    sys.modules["__main__"] = module
    needs = False
    try:
        settrace(None)
        setprofile(None)
        module.__dict__["_lb_eq"] = _lb_eq
        if error is not None:
            raise error
        run(code, module.__dict__)
    except _LbNeedsInProcess:
        needs = True
    except AssertionError as exc:
        if _LB_NEEDS:  # the test caught the refusal of a value of its own and then failed: run it in one process
            frame(fallback)
            os._exit(0)
        left = _lb_liar_of(exc) or _lb_left_of(exc)
        _lb_show_test(linecache, lines)
        _lb_rare("_lb_report_split")(exc)
        frame("assertion-failed" + left)
        os._exit(0)
    except Exception as exc:
        if _LB_NEEDS:
            frame(fallback)
            os._exit(0)
        _lb_show_test(linecache, lines)
        _lb_rare("_lb_report_split")(exc)
        _lb_end(pid)
        os._exit(1)
    _lb_flush()
    frame(fallback if needs or _LB_NEEDS else proof)
    os._exit(0)


def _lb_end(pid):
    """Stop the answer's process and reap it before this one exits: the executor then finds the
    test's processes gone instead of killing and waiting for them."""
    import os, signal
    _lb_flush()
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _lb_safe_path():
    """Drop from ``sys.path`` the directories the answer's process can write: the work dir (the
    script's), and any other writable one outside the interpreter's own prefixes. A module the
    answer leaves there must never be imported here. The harness's own modules were imported
    before the fork."""
    import os, sys
    here = os.getcwd().rstrip("/") + "/"
    own = tuple({(q.rstrip("/") + "/") for q in (sys.prefix, sys.base_prefix, sys.exec_prefix)})

    def kept(path):
        if path in ("", ".") or not os.path.isabs(path) or not os.path.exists(path):
            return False  # a missing dir could be made by the answer after this check
        slashed = path.rstrip("/") + "/"
        if slashed.startswith(here):
            return False
        return slashed.startswith(own) or not os.access(path, os.W_OK)

    sys.path[:] = [p for p in sys.path if kept(p)]



_LB_NEEDS = []  # set when a value of the test's could not be sent, even if the test caught that


def _lb_refuse(value):
    _LB_NEEDS.append(True)
    raise TypeError(f"a {type(value).__name__} of the test cannot be sent to the answer")


def _lb_split(seed):
    # everything either process needs, imported before the fork (the test's side then drops the
    # writable dirs from sys.path)
    import ast, decimal, fractions, hashlib, importlib, io, json, linecache, operator, os, signal, socket, struct, threading
    import copy, traceback
    try:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no /proc/<pid>/mem for the answer
    except BaseException:
        pass
    try:
        ours, theirs = socket.socketpair()
        pid = os.fork()
    except OSError:  # no fork here: the toolkit runs this test in one process
        pid = None
    if pid is None:
        secret, _, test = _lb_take_stdin().partition(b"\n")
        import hashlib
        digest = hashlib.sha256(test).hexdigest().encode("ascii")
        data = ("\n" + _LB_PROOF + hashlib.sha256(secret.strip() + b":in-process:" + digest).hexdigest() + "\n")
        os.write(1, data.encode("ascii"))
        os._exit(0)
    if pid == 0:
        ours.close()
        try:
            _lb_answer_side(theirs, seed)
        except SystemExit as exc:
            code = exc.code
            if code is not None and type(code) is not int:
                try:
                    print(code, file=__import__("sys").stderr)
                except BaseException:
                    pass
            _lb_flush()
            os._exit(code if type(code) is int else (0 if code is None else 1))
        except BaseException:
            os._exit(1)
    theirs.close()
    _lb_test_side(ours, pid, seed)


_lb_split(dict(globals()))
'''
