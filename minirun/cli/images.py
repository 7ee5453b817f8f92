"""Image commands: images, load, save, tag, rmi, image inspect, image prune."""
import json
import sys

import click

from .app import cli
from .report import each
from ..humanize import ago, human_size, table


def _short(image_id):
    return image_id.removeprefix("sha256:")[:12]


@cli.command("images")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Show intermediate images too (a build's steps).")
@click.pass_obj
def images_cmd(ctx, quiet, all_):
    """List images."""
    rows, seen = [], set()
    for image in ctx.api.call("GET", "/images/json", all=int(all_)):
        if quiet:
            if image["Id"] not in seen:
                seen.add(image["Id"])
                click.echo(_short(image["Id"]))
            continue
        for name in image["RepoTags"] or ["<none>:<none>"]:
            repo, _, tag = name.rpartition(":")
            rows.append((repo, tag, _short(image["Id"]), ago(image["Created"]),
                         human_size(image["Size"])))
    if not quiet:
        click.echo(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))


@cli.command("load")
@click.option("-i", "--input", "path", required=True, help="OCI layout (dir or tar) or docker save archive.")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_obj
def load_cmd(ctx, path, quiet):
    """Load images from an OCI layout or a docker save archive."""
    from ..image import archive                               # on use: not on every start
    ctx.local_only("load")
    for image_id, refs in archive.load(ctx.images, path):
        if quiet:
            continue
        for r in refs:
            click.echo(f"Loaded image: {r.familiar_repository}:{r.tag}")
        if not refs:
            click.echo(f"Loaded image ID: {image_id}")


@cli.command("save")
@click.option("-o", "--output", "out", required=True, help="Archive to write.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def save_cmd(ctx, out, names):
    """Save images to an archive that docker load and podman load accept."""
    from ..image import archive                               # on use: not on every start
    ctx.local_only("save")
    archive.save(ctx.images, names, out)


@cli.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_obj
def tag_cmd(ctx, source, target):
    """Give an image another name."""
    from ..image import reference                             # on use: not on every start
    ref = reference.parse(target)
    if ref.digest:
        raise click.UsageError("the target of a tag cannot be a digest")
    ctx.api.call("POST", f"/images/{source}/tag", repo=ref.repository, tag=ref.tag)


def _rmi(ctx, names, force):
    api = ctx.api

    def one(name):
        for done in api.call("DELETE", f"/images/{name}", force=int(force)):
            for what, subject in done.items():
                click.echo(f"{what}: {subject}")
    each(names, one)


@cli.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Remove even if tagged more than once.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rmi_cmd(ctx, names, force):
    """Remove images."""
    _rmi(ctx, names, force)


@cli.group("image")
def image_group():
    """Manage images."""


@image_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def image_inspect(ctx, names):
    """Show images as JSON."""
    api = ctx.api
    click.echo(json.dumps([api.call("GET", f"/images/{n}/json") for n in names], indent=4))


@image_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Also remove untagged images.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.pass_obj
def image_prune(ctx, all_, force):
    """Remove blobs and layers that no image uses (and, with -a, untagged images)."""
    filters = json.dumps({"dangling": ["false" if all_ else "true"]})
    done = ctx.api.call("POST", "/images/prune", filters=filters)
    for item in done["ImagesDeleted"] or []:
        for what, subject in item.items():
            click.echo(f"{what}: {subject}")
    click.echo(f"Total reclaimed space: {human_size(done['SpaceReclaimed'])}")


image_group.add_command(images_cmd, "ls")
image_group.add_command(load_cmd, "load")
image_group.add_command(save_cmd, "save")
image_group.add_command(tag_cmd, "tag")
image_group.add_command(rmi_cmd, "rm")


@cli.command("history")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--no-trunc", is_flag=True)
@click.argument("name")
@click.pass_obj
def history_cmd(ctx, quiet, no_trunc, name):
    """The steps an image was made of, newest first."""
    rows = ctx.api.call("GET", f"/images/{name}/history")
    if quiet:
        click.echo("\n".join(r["Id"] if no_trunc else r["Id"].split(":")[-1][:12]
                             for r in rows if r["Id"] != "<missing>"))
        return
    click.echo(table(["IMAGE", "CREATED", "CREATED BY", "COMMENT"], [
        (r["Id"] if no_trunc or r["Id"] == "<missing>" else r["Id"].split(":")[-1][:12],
         ago(r["Created"]), r["CreatedBy"] if no_trunc else r["CreatedBy"][:45],
         r["Comment"]) for r in rows]))


@cli.command("import")
@click.option("-c", "--change", "changes", multiple=True)
@click.option("-m", "--message", default="")
@click.argument("source")
@click.argument("name", required=False)
@click.pass_obj
def import_cmd(ctx, changes, message, source, name):
    """Make a one-layer image of a tar (a file, or - for stdin): through minirund."""
    repo, tag = (name.rsplit(":", 1) if name and ":" in name.rsplit("/", 1)[-1]
                 else (name, None))
    src = sys.stdin.buffer if source == "-" else open(source, "rb")
    try:
        resp = ctx.client.request("POST", "/images/create", fromSrc="-", repo=repo, tag=tag,
                                  message=message or None, changes=list(changes) or None,
                                  chunks=iter(lambda: src.read(1 << 20), b""),
                                  headers={"Content-Type": "application/x-tar"})
        for line in resp.read().splitlines():
            click.echo(json.loads(line).get("status", ""))
    finally:
        if src is not sys.stdin.buffer:
            src.close()
