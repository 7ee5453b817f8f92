"""minirun build: the Dockerfile language, each step a real container, the cache, and
``docker build`` / docker-py through minirund."""
import glob
import gzip
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time

import pytest
from conftest import remove_new_cgroups, wait_for

from minirun.build.dockerfile import DockerfileError, parse
from minirun.build.patterns import Ignore
from minirun.build.words import SubstitutionError, process_word, process_words


# -- the language (no root) -----------------------------------------------------------------
def test_instructions_continuations_comments_and_forms_parse_as_docker_reads_them():
    text = ("# escape=`\n"
            "# syntax=docker/dockerfile:1\n"
            "FROM busybox AS Base\n"
            "# a comment\n"
            "RUN echo a `\n"
            "  # a comment inside the continuation vanishes\n"
            "  && echo b\n"
            "\n"
            'copy --chown=1:2 --chmod=640 ["a b", "/x/"]\n'
            "ENV A=1 B=\"two words\"\n"
            "ENV OLD form with spaces\n"
            "CMD echo $A\n"
            'ENTRYPOINT ["sh", "-c"]\n'
            "RUN [not json\n")
    ins, escape = parse(text)
    assert escape == "`"
    assert [i.cmd for i in ins] == ["from", "run", "copy", "env", "env", "cmd", "entrypoint",
                                    "run"]
    assert ins[0].args == ["busybox", "AS", "Base"]
    assert ins[1].text == "echo a   && echo b" and not ins[1].json
    assert ins[2].json and ins[2].args == ["a b", "/x/"]
    assert ins[2].flags == {"chown": "1:2", "chmod": "640"}
    assert ins[3].args == [("A", "1"), ("B", '"two words"')]
    assert ins[4].args == [("OLD", "form with spaces")]
    assert ins[5].text == "echo $A" and not ins[5].json
    assert ins[6].json and ins[6].args == ["sh", "-c"]
    assert ins[7].text == "[not json" and not ins[7].json      # not JSON: the shell form


@pytest.mark.parametrize("text, error", [
    ("FROM busybox\nFROOM x\n", "unknown instruction: FROOM"),
    ("FROM busybox\nCOPY onlyone\n", "COPY requires at least two arguments"),
    ("FROM busybox\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", "unknown flag: mount"),
    ("FROM busybox\nWORKDIR\n", "WORKDIR requires exactly one argument"),
    ("FROM busybox\nRUN <<EOF\necho hi\nEOF\n", "here-documents .* need BuildKit"),
    ("FROM a b\n", "FROM requires either one or three arguments"),
    ("# escape=x\nFROM busybox\n", "invalid escape token"),
    ("\n# only a comment\n", "cannot be empty"),
])
def test_bad_dockerfiles_fail_with_one_line_naming_the_fault(text, error):
    with pytest.raises(DockerfileError, match=error):
        parse(text)


@pytest.mark.parametrize("text, words", [
    ("$A", ["1"]), ("${A}b", ["1b"]), ("${E:-d}", ["d"]), ("${E-d}", [""]),
    ("${U-d}", ["d"]), ("${U:+y}", [""]), ("${A:+y}", ["y"]), ("${A:+$A$A}", ["11"]),
    ('"$A x" y', ["1 x", "y"]), ("'$A x'", ["$A x"]), ("\\$A", ["$A"]), ("a\\ b", ["a b"]),
    ("${U:-a b} c", ["a b", "c"]), ("$", ["$"]), ("$1x", ["x"]), ('"a\\"b"', ['a"b']),
])
def test_variables_substitute_as_dockers_shell_lexer_does(text, words):
    assert process_words(text, {"A": "1", "E": ""}) == words


def test_substitution_errors_are_one_line():
    with pytest.raises(SubstitutionError, match="U: must be set"):
        process_word("${U:?must be set}", {})
    with pytest.raises(SubstitutionError, match="matching double-quote"):
        process_word('"open', {})


@pytest.mark.parametrize("path, excluded", [
    ("a.log", True), ("sub/a.log", False), ("keep.log", False), ("tmp", True),
    ("x/y/tmp/f", True), ("node_modules/a/b", True), ("docs/a/b/c.md", True),
    ("docs/README.md", False), ("docs/x.txt", False), ("src/main.py", False),
    (".git/config", True),
])
def test_dockerignore_rules_match_as_dockers(path, excluded):
    ignore = Ignore("# comment\n*.log\n!keep.log\n**/tmp\nnode_modules\n"
                    "docs/**/*.md\n!docs/README.md\n  .git  \n")
    assert ignore.excluded(path) is excluded


# -- building (root) ------------------------------------------------------------------------
def _context(tmp_path, dockerfile, files=None, name="ctx"):
    ctx = tmp_path / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for path, content in (files or {}).items():
        p = ctx / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return ctx


def _inspect(m, name):
    return json.loads(m("image", "inspect", name).stdout)[0]


def _layer_names(m, name, index=-1):
    store = m.store()
    digest = store.manifest(store.resolve(name))["layers"][index]["digest"]
    with tarfile.open(store.blobs.path(digest), "r:gz") as t:
        return {member.name: member for member in t.getmembers()}


@pytest.mark.root
def test_a_multi_stage_build_copies_runs_and_sets_the_config(loaded, tmp_path):
    ctx = _context(tmp_path, """\
ARG BASE=busybox
FROM $BASE AS tools
RUN echo built-in-tools > /tool
FROM ${BASE}
ARG BASE
ARG WHO=world
ENV GREETING="hello ${WHO}" APP=/srv/app
WORKDIR $APP
COPY src/ ./src/
COPY --chown=nobody:nogroup --chmod=640 conf/*.conf /etc/app/
COPY --from=tools /tool /opt/tool
COPY one.txt copied.txt
RUN echo "$GREETING from $BASE" > message && id -u > uid && rm /bin/ls
USER nobody
EXPOSE 8080 53/udp 9000-9001
VOLUME /data
LABEL org.example.who="$WHO" plain=yes
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT cat message
""", {"src/a.txt": "A", "src/sub/b.txt": "B", "conf/x.conf": "X", "conf/y.conf": "Y",
      "conf/z.txt": "not copied", "one.txt": "one"})
    p = loaded("build", "-t", "app:v1", "--build-arg", "WHO=tests", str(ctx))
    assert "Step 1/21 : ARG BASE=busybox" in p.stdout and "Successfully tagged app:v1" in p.stdout
    assert loaded("run", "--rm", "app:v1").stdout == "hello tests from busybox\n"
    p = loaded("run", "--rm", "--entrypoint", "sh", "app:v1", "-c",
               "pwd; cat src/a.txt src/sub/b.txt copied.txt /opt/tool uid; "
               "stat -c '%U:%G %a %n' /etc/app/*; ls /etc/app; test -e /bin/ls || echo no-ls")
    assert p.stdout.split("\n") == [
        "/srv/app", "AB" + "one" + "built-in-tools", "0",
        "nobody:nogroup 640 /etc/app/x.conf", "nobody:nogroup 640 /etc/app/y.conf",
        "x.conf", "y.conf", "no-ls", ""], p.stderr
    config = _inspect(loaded, "app:v1")["Config"]
    assert config["User"] == "nobody" and config["WorkingDir"] == "/srv/app"
    assert "GREETING=hello tests" in config["Env"] and "APP=/srv/app" in config["Env"]
    assert not any(e.startswith("WHO=") for e in config["Env"])     # build args stay out
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp", "9000/tcp", "9001/tcp"}
    assert config["Volumes"] == {"/data": {}}
    assert config["Labels"] == {"org.example.who": "tests", "plain": "yes"}
    assert config["StopSignal"] == "SIGUSR1"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
                                     "Interval": 5_000_000_000, "Retries": 2}
    assert config["Entrypoint"] == ["/bin/sh", "-ec", "cat message"]
    assert config["Cmd"] is None                  # ENTRYPOINT drops the base image's CMD
    store = loaded.store()
    steps = store.config(store.resolve("app:v1"))["history"][2:]   # after busybox's two
    layered = [h["created_by"] for h in steps if not h.get("empty_layer")]
    assert len(layered) == 6, layered            # WORKDIR, four COPYs, RUN
    assert layered[-1].startswith("|2 BASE=busybox WHO=tests /bin/sh -c echo")


@pytest.mark.root
def test_proxy_args_reach_run_but_not_history_and_copy_from_takes_an_image(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM --platform=linux/amd64 busybox\n"
                             "RUN echo \"proxy=$HTTP_PROXY\" > /seen\n"
                             "COPY --from=busybox:latest /etc/group /group-of-busybox\n")
    p = loaded("build", "-t", "proxied", "--build-arg", "HTTP_PROXY=http://proxy.test:3128",
               str(ctx))
    assert "[Warning]" not in p.stdout                       # predefined: no need to declare
    out = loaded("run", "--rm", "proxied", "sh", "-c", "cat /seen; head -1 /group-of-busybox")
    assert out.stdout == "proxy=http://proxy.test:3128\nroot:x:0:\n"
    history = json.dumps(loaded.store().config(loaded.store().resolve("proxied"))["history"])
    assert "proxy.test" not in history


@pytest.mark.root
def test_deletions_are_whiteouts_seen_from_inside_and_in_the_layer(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\n"
                             "RUN rm /bin/ls && rm -rf /usr && mkdir /usr && echo x > /usr/only\n")
    loaded("build", "-t", "gone", str(ctx))
    names = _layer_names(loaded, "gone")
    assert "bin/.wh.ls" in names and "usr/.wh..wh..opq" in names and "usr/only" in names
    p = loaded("run", "--rm", "gone", "sh", "-c", "ls /usr; test -e /bin/ls || echo no-ls")
    assert p.stdout.split() == ["only", "no-ls"], p.stderr


@pytest.mark.root
def test_symlinks_in_the_image_resolve_inside_it_for_copy_and_copy_from(loaded, tmp_path):
    victim = tmp_path / "host-dir"
    victim.mkdir()
    ctx = _context(tmp_path, f"FROM busybox AS evil\n"
                             f"RUN ln -s {victim} /link && ln -s / /up && "
                             f"ln -s /etc/passwd /pw\n"
                             f"COPY f /link/f\n"
                             f"COPY f /up/../../..{victim}/g\n"
                             f"FROM busybox\nCOPY --from=evil /pw /copied-passwd\n"
                             f"COPY --from=evil {victim}/f /from-stage\n", {"f": "planted"})
    loaded("build", "-t", "links", "--target", "evil", str(ctx))
    assert list(victim.iterdir()) == []                   # nothing reached the host
    p = loaded("run", "--rm", "links", "cat", f"{victim}/f", f"{victim}/g")
    assert p.stdout == "plantedplanted"                   # inside the image instead
    loaded("build", "-t", "links2", str(ctx))
    p = loaded("run", "--rm", "links2", "sh", "-c", "head -1 /copied-passwd; cat /from-stage")
    assert p.stdout == "root:x:0:0:root:/root:/bin/sh\nplanted"   # the stage's, not the host's


@pytest.mark.root
def test_extended_attributes_reach_the_layers_but_not_trusted_ones(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\nCOPY cap.bin /cap.bin\n"
                             "RUN mv /cap.bin /moved.bin\n", {"cap.bin": "x"})
    os.setxattr(ctx / "cap.bin", "user.origin", b"\x00binary\xff")
    os.setxattr(ctx / "cap.bin", "trusted.overlay.redirect", b"/etc")   # must not travel
    loaded("build", "-t", "xattrs", "--iidfile", str(tmp_path / "iid"), "--label", "k=v",
           str(ctx))
    copied = _layer_names(loaded, "xattrs", -2)["cap.bin"].pax_headers
    moved = _layer_names(loaded, "xattrs", -1)["moved.bin"].pax_headers   # the RUN's layer
    for headers in (copied, moved):
        assert headers["SCHILY.xattr.user.origin"].encode("utf-8", "surrogateescape") == \
            b"\x00binary\xff"
        assert not any("trusted" in k for k in headers)
    assert (tmp_path / "iid").read_text() == _inspect(loaded, "xattrs")["Id"]
    assert _inspect(loaded, "xattrs")["Config"]["Labels"] == {"k": "v"}
    os.setxattr(ctx / "cap.bin", "user.origin", b"changed")        # the cache sees it
    again = loaded("build", str(ctx)).stdout
    assert again.count("Using cache") == 0 and "Running in" in again


@pytest.mark.root
def test_the_cache_reuses_steps_until_a_copied_file_changes(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\nCOPY a.txt /a\nRUN cat /a > /a2\n"
                             "ARG V=1\nCOPY b.txt /b\nRUN echo $V; cat /b > /b2\n",
                   {"a.txt": "a", "b.txt": "b"})
    first = loaded("build", "-t", "c:1", str(ctx)).stdout
    assert first.count(" ---> Running in ") == 2 and "Using cache" not in first
    again = loaded("build", "-t", "c:2", str(ctx)).stdout
    assert again.count(" ---> Using cache") == 5 and "Running in" not in again
    assert _inspect(loaded, "c:1")["Id"] == _inspect(loaded, "c:2")["Id"]
    (ctx / "b.txt").write_text("changed")
    os.utime(ctx / "a.txt")                        # a time alone changes nothing
    changed = loaded("build", "-t", "c:3", str(ctx)).stdout
    assert changed.count(" ---> Using cache") == 3 and changed.count("Running in") == 1
    assert loaded("run", "--rm", "c:3", "cat", "/a2", "/b2").stdout == "achanged"
    arg = loaded("build", "--build-arg", "V=2", str(ctx)).stdout
    assert arg.count("Using cache") == 2 and arg.count("Running in") == 1   # from the ARG on
    nocache = loaded("build", "--no-cache", str(ctx)).stdout
    assert "Using cache" not in nocache and nocache.count("Running in") == 2
    p = loaded("builder", "prune", "-f")
    assert "Total reclaimed space" in p.stdout
    assert "Using cache" not in loaded("build", str(ctx)).stdout
    assert loaded("run", "--rm", "c:1", "cat", "/b2").stdout == "b"     # tags survive prune


@pytest.mark.root
def test_dockerignore_hides_files_from_copy_and_exceptions_bring_them_back(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\nCOPY . /ctx/\n", {
        ".dockerignore": "*.log\n!keep.log\n**/secret*\nbuild\n", "a.log": "x",
        "keep.log": "k", "app/secret.key": "s", "app/main.py": "m", "build/out": "o",
        "deep/er/secret": "s"})
    loaded("build", "-t", "ign", str(ctx))
    files = loaded("run", "--rm", "ign", "find", "/ctx", "-type", "f").stdout.split()
    assert sorted(files) == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/app/main.py",
                             "/ctx/keep.log"]
    bad = _context(tmp_path, "FROM busybox\nCOPY a.log /\n", {".dockerignore": "*.log\n",
                                                               "a.log": "x"}, name="bad")
    p = loaded("build", str(bad), check=False)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == ("Error: file not found in build context or "
                                                  "excluded by .dockerignore: stat a.log: file "
                                                  "does not exist")


@pytest.mark.root
def test_stages_the_target_does_not_need_are_skipped(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox AS broken\nRUN exit 9\n"
                             "FROM busybox AS base\nRUN echo base > /base\n"
                             "FROM base AS final\nCOPY --from=base /base /copy\n"
                             "FROM broken AS after\n")
    p = loaded("build", "--target", "final", "-t", "t", str(ctx))
    assert "exit 9" not in p.stdout and "Step 1/4 : FROM busybox AS base" in p.stdout
    assert loaded("run", "--rm", "t", "cat", "/copy").stdout == "base\n"
    p = loaded("build", "--target", "broken", str(ctx), check=False)
    assert p.returncode == 9
    p = loaded("build", "--target", "nope", str(ctx), check=False)
    assert "failed to reach build target nope" in p.stderr


def _leftovers(m):
    root = m.root
    return {"containers": [r["id"] for r in m.containers().list()],
            "dirs": os.listdir(os.path.join(root, "containers"))
            if os.path.isdir(os.path.join(root, "containers")) else [],
            "tmp": os.listdir(os.path.join(root, "blobs", "tmp"))
            if os.path.isdir(os.path.join(root, "blobs", "tmp")) else [],
            "layers.tmp": os.listdir(os.path.join(root, "layers", ".tmp"))}


@pytest.mark.root
def test_a_failing_step_stops_with_its_code_and_leaves_nothing(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\nCOPY f /f\nRUN echo partial > /p; exit 7\n",
                   {"f": "x"})
    p = loaded("build", "-t", "never", str(ctx), check=False)
    assert p.returncode == 7
    assert "Step 3/3" in p.stdout
    assert p.stderr.strip().splitlines()[-1] == \
        "Error: The command '/bin/sh -c echo partial > /p; exit 7' returned a non-zero code: 7"
    assert _leftovers(loaded) == {"containers": [], "dirs": [], "tmp": [], "layers.tmp": []}
    assert "never" not in loaded("images").stdout


@pytest.mark.root
def test_ctrl_c_during_a_run_step_leaves_no_container(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\nRUN echo started; sleep 60\n")
    proc = subprocess.Popen(loaded.argv("build", str(ctx)), env=loaded.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "started" not in seen:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        seen += line
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert _leftovers(loaded) == {"containers": [], "dirs": [], "tmp": [], "layers.tmp": []}


def _tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = 0o644, 1234, 5678
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.root
def test_add_unpacks_local_archives_escape_proof_and_copies_other_files(loaded, tmp_path):
    good = gzip.compress(_tar([("pkg", "dir", None), ("pkg/bin.sh", "file", b"echo ok\n")]))
    ctx = _context(tmp_path, "FROM busybox\nADD pkg.tar.gz /opt/\nADD plain.txt /opt/\n",
                   {"pkg.tar.gz": good, "plain.txt": "plain"})
    loaded("build", "-t", "added", str(ctx))
    p = loaded("run", "--rm", "added", "sh", "-c",
               "cat /opt/pkg/bin.sh /opt/plain.txt; stat -c '%u:%g' /opt/pkg/bin.sh")
    assert p.stdout == "echo ok\nplain1234:5678\n", p.stderr      # an archive keeps owners
    outside = tmp_path / "escaped"
    for evil in (_tar([("../../../../../../" + str(outside).lstrip("/"), "file", b"x")]),
                 _tar([("link", "sym", str(tmp_path)), ("link/escaped", "file", b"x")])):
        bad = _context(tmp_path, "FROM busybox\nADD evil.tar /x/\n", {"evil.tar": evil},
                       name="evil")
        p = loaded("build", str(bad), check=False)
        assert p.returncode == 1 and ("climbs out" in p.stderr or "would leave" in p.stderr), \
            p.stderr
        assert not outside.exists()
        assert _leftovers(loaded)["containers"] == []


@pytest.fixture
def http_file(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hello.txt").write_text("from the web\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.root
def test_add_downloads_a_url_and_fails_clearly_when_it_cannot(loaded, tmp_path, http_file):
    ctx = _context(tmp_path, f"FROM busybox\nADD {http_file}/hello.txt /web/\n")
    loaded("build", "-t", "web", str(ctx))
    p = loaded("run", "--rm", "web", "sh", "-c", "cat /web/hello.txt; stat -c %a /web/hello.txt")
    assert p.stdout == "from the web\n600\n"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]                # nothing listens there once closed
    bad = _context(tmp_path, f"FROM busybox\nADD http://127.0.0.1:{closed}/x /x\n", name="bad")
    p = loaded("build", str(bad), check=False)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].startswith(
        f"Error: ADD http://127.0.0.1:{closed}/x: cannot download it: ")
    assert _leftovers(loaded)["containers"] == []


@pytest.mark.root
def test_source_date_epoch_builds_the_same_image_twice(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\nCOPY f /f\nRUN echo $RANDOM_NOT > /r; "
                             "touch /made\nENV X=1\n", {"f": "x"})
    first = loaded("build", "--no-cache", "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000",
                   str(ctx)).stdout.strip()
    time.sleep(1.1)
    (ctx / "f").touch()
    second = loaded("build", "--no-cache", "-q", str(ctx),                 # or from the
                    env={"SOURCE_DATE_EPOCH": "1700000000"}).stdout.strip()   # environment
    assert first == second and first.startswith("sha256:")
    assert _inspect(loaded, first)["Created"].startswith("2023-11-14T22:13:20")
    names = _layer_names(loaded, first)
    assert max(m.mtime for m in names.values()) <= 1700000000


@pytest.mark.root
def test_from_scratch_and_onbuild_triggers(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox AS bb\nFROM scratch\n"
                             "COPY --from=bb /bin/busybox /busybox\n"
                             'ENTRYPOINT ["/busybox"]\nCMD ["echo", "from scratch"]\n'
                             "ONBUILD RUN [\"/busybox\", \"touch\", \"/triggered\"]\n")
    loaded("build", "-t", "tiny", str(ctx))
    assert len(_inspect(loaded, "tiny")["RootFS"]["Layers"]) == 1
    assert loaded("run", "--rm", "tiny").stdout == "from scratch\n"
    child = _context(tmp_path, "FROM tiny\n", name="child")
    p = loaded("build", "-t", "child", str(child))
    assert "Executing 1 build trigger" in p.stdout
    assert loaded("run", "--rm", "child", "ls", "/triggered").stdout == "/triggered\n"
    assert not _inspect(loaded, "child")["Config"].get("OnBuild")


# -- through minirund ---------------------------------------------------------------------
from test_attach import docker, needs_docker        # noqa: E402


@needs_docker
@pytest.mark.root
def test_docker_build_through_minirund_with_a_dockerfile_outside_the_context(daemon, tmp_path):
    ctx = _context(tmp_path, "", {"data.txt": "data"})
    os.unlink(ctx / "Dockerfile")
    outside = tmp_path / "Other.Dockerfile"
    outside.write_text("FROM busybox\nARG WHAT\nCOPY data.txt /\nRUN echo $WHAT; "
                       "cat /data.txt > /out\n")
    env_args = ("--build-arg", "WHAT=argued")
    p = subprocess.run(["docker", "build", "-f", str(outside), "-t", "viadocker:1", *env_args,
                        str(ctx)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "DOCKER_HOST": "unix://" + daemon.sock,
                            "DOCKER_BUILDKIT": "0"})
    assert p.returncode == 0, p.stderr
    assert "argued" in p.stdout and "Successfully tagged viadocker:1" in p.stdout
    assert docker(daemon, "run", "--rm", "viadocker:1", "cat", "/out").stdout == b"data"
    bad = tmp_path / "Bad.Dockerfile"
    bad.write_text("FROM busybox\nRUN exit 4\n")
    p = subprocess.run(["docker", "build", "-f", str(bad), str(ctx)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "DOCKER_BUILDKIT": "0",
                                                    "DOCKER_HOST": "unix://" + daemon.sock})
    assert p.returncode == 4
    assert "The command '/bin/sh -c exit 4' returned a non-zero code: 4" in p.stderr
    assert docker(daemon, "ps", "-aq").stdout == b""


@pytest.mark.root
def test_docker_py_images_build_streams_progress_and_tags(daemon, tmp_path):
    ctx = _context(tmp_path, "FROM busybox AS one\nRUN echo step-output\n"
                             "FROM one AS two\nLABEL stage=two\n")
    client = daemon.client()
    image, logs = client.images.build(path=str(ctx), tag="py:1", target="one",
                                      labels={"by": "docker-py"}, buildargs={"UNUSED": "x"})
    text = "".join(l.get("stream", "") for l in logs)
    assert "step-output" in text and "[Warning] One or more build-args [UNUSED]" in text
    assert image.labels == {"by": "docker-py"} and "py:1" in image.tags
    again, logs = client.images.build(path=str(ctx), target="one", gzip=True,   # a gzip body
                                      labels={"by": "docker-py"})
    assert again.id == image.id and "Using cache" in "".join(l.get("stream", "") for l in logs)
    assert client.api.prune_builds()["SpaceReclaimed"] >= 0
    with pytest.raises(Exception, match="returned a non-zero code: 3"):
        client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 3\n"))
    assert client.containers.list(all=True) == []


@pytest.mark.root
def test_hostile_build_contexts_through_the_api_are_refused(daemon, tmp_path):
    import docker as docker_py
    api = docker_py.APIClient(base_url="unix://" + daemon.sock)
    outside = tmp_path / "outside"
    cases = [
        (_tar([("Dockerfile", "file", b"FROM busybox\nCOPY s /s\n"),
               ("s", "sym", "/etc/shadow")]), "file not found in build context"),
        (_tar([("Dockerfile", "file", b"FROM busybox\n"),
               ("../../../../../" + str(outside).lstrip("/"), "file", b"x")]), "climbs out"),
        (_tar([("Dockerfile", "file", b"FROM busybox\nCOPY link/x /x\n"),
               ("link", "sym", "/"), ("link/x", "file", b"x")]), "would leave"),
    ]
    answer = api._post(api._url("/build"), params={"t": "Bad Name"},      # docker-py would
                       data=_tar([("Dockerfile", "file", b"FROM busybox\n")]),   # refuse it
                       headers={"Content-Type": "application/x-tar"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "invalid reference format: 'Bad Name'"
    for body, error in cases:
        try:
            out = "".join(json.dumps(m) for m in api.build(fileobj=io.BytesIO(body),
                                                           custom_context=True, decode=True))
        except docker_py.errors.APIError as e:
            out = str(e)
        assert error in out, out
        assert not outside.exists()
    assert api.containers(all=True) == []
    assert os.listdir(os.path.join(daemon.minirun.root, "builds")) == []


def _build_running_a_step(daemon):
    """A connection to minirund whose /build is in a RUN step (its output seen)."""
    body = _tar([("Dockerfile", "file", b"FROM busybox\nRUN echo started; sleep 60\n")])
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.sock)
    s.sendall(b"POST /v1.41/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar"
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    seen = b""
    while b'"started\\n"' not in seen:              # its output, not its Step line
        chunk = s.recv(4096)
        assert chunk, seen
        seen += chunk
    return s


@pytest.mark.root
def test_a_client_that_goes_away_mid_build_takes_its_step_container_with_it(daemon, tmp_path):
    with _build_running_a_step(daemon):
        assert daemon.cli("ps", "-q").stdout.strip()
    assert wait_for(lambda: not daemon.cli("ps", "-aq").stdout.strip(), timeout=15)


@pytest.mark.root
def test_a_build_cut_short_by_minirund_s_death_is_cleaned_up_by_the_next(daemon, tmp_path):
    with _build_running_a_step(daemon):
        daemon.stop(signal.SIGKILL)
    daemon.start()
    assert daemon.cli("ps", "-aq").stdout.strip() == ""
    assert [d for d in os.listdir(os.path.join(daemon.minirun.root, "builds"))] == []


# -- the image runs elsewhere ---------------------------------------------------------------
@pytest.mark.root
@pytest.mark.skipif(not shutil.which("podman"), reason="podman not installed")
def test_a_built_image_loads_into_podman_with_the_same_id(loaded, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\nRUN rm /bin/ls && echo x > /x\nCMD [\"cat\", \"/x\"]\n")
    loaded("build", "-t", "export:1", str(ctx))
    ours = str(tmp_path / "built.tar")
    loaded("save", "-o", ours, "export:1")
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\nrunroot = "{tmp_path}/prun"\n'
                    f'graphroot = "{tmp_path}/pgraph"\n')
    engine = tmp_path / "containers.conf"         # as ../shared/peers/00_env.sh: this VM's
    engine.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", '   # limits
                      '"nproc=32768:32768"]\n[engine]\ncgroup_manager = "cgroupfs"\n'
                      f'events_logger = "file"\nevents_logfile_path = "{tmp_path}/ev.log"\n'
                      'runtime = "runc"\n')
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(conf), CONTAINERS_CONF=str(engine))
    podman = lambda *a: subprocess.run(["podman", *a], env=env, check=True,
                                       capture_output=True, text=True, timeout=120)
    cgroups = set(glob.glob("/sys/fs/cgroup/*/libpod_parent"))
    try:
        podman("load", "-i", ours)
        name = "docker.io/library/export:1"
        got = podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        assert "sha256:" + got == _inspect(loaded, "export:1")["Id"]
        mounted = podman("image", "mount", name).stdout.strip()
        try:
            assert open(os.path.join(mounted, "x")).read() == "x\n"
            assert not os.path.exists(os.path.join(mounted, "bin", "ls"))   # the whiteout
            assert os.path.exists(os.path.join(mounted, "bin", "cat"))
        finally:
            podman("image", "unmount", name)
        if shutil.which("runc"):                            # podman's runtime here
            out = podman("run", "--rm", "--network", "none", name, "sh", "-c",
                         "cat /x; test -e /bin/ls || echo no-ls").stdout
            assert out == "x\nno-ls\n"
    finally:
        subprocess.run(["podman", "system", "reset", "-f"], env=env, capture_output=True)
        remove_new_cgroups("libpod_parent", cgroups)
