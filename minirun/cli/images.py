"""Image commands: images, load, save, tag, rmi, image inspect, image prune."""
import json

import click

from .app import cli
from .report import each
from ..humanize import ago, human_size, parse_time, table


def _short(image_id):
    return image_id.removeprefix("sha256:")[:12]


@cli.command("images")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.pass_obj
def images_cmd(ctx, quiet):
    """List images."""
    rows, seen = [], set()
    for record, refs in ctx.images.list():
        if quiet:
            if record["id"] not in seen:
                seen.add(record["id"])
                click.echo(_short(record["id"]))
            continue
        created = ago(parse_time(record["created"]))
        for repo, tag in [(r.familiar_repository, r.tag) for r in refs] or [("<none>", "<none>")]:
            rows.append((repo, tag, _short(record["id"]), created, human_size(record["size"])))
    if not quiet:
        click.echo(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))


@cli.command("load")
@click.option("-i", "--input", "path", required=True, help="OCI layout (dir or tar) or docker save archive.")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_obj
def load_cmd(ctx, path, quiet):
    """Load images from an OCI layout or a docker save archive."""
    from ..image import archive
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
    from ..image import archive
    archive.save(ctx.images, names, out)


@cli.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_obj
def tag_cmd(ctx, source, target):
    """Give an image another name."""
    from ..image import reference
    ref = reference.parse(target)
    if ref.digest:
        raise click.UsageError("the target of a tag cannot be a digest")
    ctx.images.tag(ref, ctx.images.resolve(source))


def _rmi(ctx, names, force):
    def one(name):
        for what, subject in ctx.images.remove(name, force=force, in_use=ctx.image_in_use):
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
    from ..image.inspect import inspect_image
    click.echo(json.dumps([inspect_image(ctx.images, ctx.images.resolve(n)) for n in names],
                          indent=4))


@image_group.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Also remove untagged images.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (minirun never asks).")
@click.pass_obj
def image_prune(ctx, all_, force):
    """Remove blobs and layers that no image uses (and, with -a, untagged images)."""
    if all_:
        for record, refs in ctx.images.list():
            if not refs and not ctx.image_in_use(record["id"]):
                ctx.images.remove(record["id"], force=True)
    freed = ctx.images.prune()
    click.echo(f"Total reclaimed space: {human_size(freed)}")


image_group.add_command(images_cmd, "ls")
image_group.add_command(load_cmd, "load")
image_group.add_command(save_cmd, "save")
image_group.add_command(tag_cmd, "tag")
image_group.add_command(rmi_cmd, "rm")
