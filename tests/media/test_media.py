"""The media service: conversion, storage layout, sidecars, refusals, hand-dropped files, rebuild, watcher."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from PIL import Image

from cms.cli import main
from cms.config import Site
from cms.content.index import Index
from cms.errors import BadRequest, ConfigError, Invalid, PayloadTooLarge, UnsupportedMediaType
from cms.events.bus import Bus, Event
from cms.media import MediaLibrary, UploadsWatcher, sniff
from cms.media import files as files_module
from tests.conftest import MakeSite
from tests.media import images
from tests.support import wait_until

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FOLDER = "images/2026/05"


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability has its own tests (tests/reliability); here an fsync per file only costs time."""
    monkeypatch.setattr("os.fsync", lambda fd: None)


@pytest.fixture
def site(make_site: MakeSite) -> Site:
    return make_site({"content/posts/hello.md": "---\ntitle: Hello\n---\nHi.\n"})


@pytest.fixture
def library(site: Site) -> Iterator[MediaLibrary]:
    lib = MediaLibrary.load(site, clock=lambda: NOW)
    yield lib
    lib.close()


def files(root: Path) -> dict[str, str]:
    """sha256 of every file under root (uploads/), by relative path."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def opened(site: Site, rel: str) -> Image.Image:
    im = Image.open(site.uploads_dir / rel)
    im.load()
    return im


# -- conversion ---------------------------------------------------------------------------------


def test_12_megapixel_jpeg_is_rotated_stripped_and_gets_every_width(site: Site, library: MediaLibrary) -> None:
    data = images.jpeg((4000, 3000), orientation=6, gps=True)
    assert Image.open(io.BytesIO(data)).getexif().get(0x8825) is not None  # the input does carry GPS
    item = library.ingest(data, "IMG_0042.JPG", alt="Two colours")  # its speed: bench.media `ingest.median`
    assert (item.width, item.height) == (3000, 4000)  # orientation 6: displayed as portrait
    assert item.folder == FOLDER and item.file == "img-0042.jpg" and item.original_name == "IMG_0042.JPG"
    assert (site.uploads_dir / item.rel(item.file)).read_bytes() == data  # the original, byte for byte
    assert item.checksum == "sha256:" + hashlib.sha256(data).hexdigest() and item.size == len(data)
    assert sorted(item.variants) == [480, 960, 1600]
    for name in item.generated:
        im = opened(site, item.rel(name))
        exif = im.getexif()
        assert exif.get(0x8825) is None, f"{name} kept GPS"
        assert exif.get(0x0112) in (None, 1), f"{name} kept a rotation tag"
        assert im.height > im.width, f"{name} is not upright"
        w, h = im.size
        top, bottom = im.convert("RGB").getpixel((w // 2, h // 8)), im.convert("RGB").getpixel((w // 2, h * 7 // 8))
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60, (name, top, bottom)
    assert opened(site, item.rel(item.variants[960]["webp"])).size == (960, 1280)


def test_a_600px_image_gets_only_the_480_variant(site: Site, library: MediaLibrary) -> None:
    item = library.ingest(images.jpeg((600, 400)), "small.jpg")
    assert list(item.variants) == [480]
    assert opened(site, item.rel(item.variants[480]["avif"])).size == (480, 320)
    assert opened(site, item.rel(item.derivatives["webp"])).size == (600, 400)  # full size, not enlarged


def test_png_alpha_survives_in_webp_and_avif(site: Site, library: MediaLibrary) -> None:
    item = library.ingest(images.png_alpha(), "logo.png")
    for name in (item.derivatives["webp"], item.derivatives["avif"], item.variants[480]["webp"]):
        im = opened(site, item.rel(name))
        assert im.mode == "RGBA", name
        assert im.getchannel("A").getextrema() == (0, 255), name


def test_16_bit_png_is_scaled_not_clipped(site: Site, library: MediaLibrary) -> None:
    item = library.ingest(images.png16(), "scan.png")
    im = opened(site, item.rel(item.derivatives["webp"])).convert("L")
    low, high = im.getextrema()
    assert low < 20 and high > 235  # the whole gradient, not a white square
    assert 100 < im.getpixel((256, 256)) < 160


def test_cmyk_jpeg_becomes_rgb(site: Site, library: MediaLibrary) -> None:
    item = library.ingest(images.cmyk_jpeg(), "print.jpg")
    assert item.mime_type == "image/jpeg"
    im = opened(site, item.rel(item.derivatives["avif"]))
    assert im.mode == "RGB"
    r, g, b = im.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(
    ("make", "ext", "mime"), [(images.webp, "webp", "image/webp"), (images.avif, "avif", "image/avif")]
)
def test_webp_and_avif_originals_are_named_orig(
    site: Site, library: MediaLibrary, make: object, ext: str, mime: str
) -> None:
    data = make()  # type: ignore[operator]
    item = library.ingest(data, f"picture.{ext}")
    assert item.file == f"picture.orig.{ext}" and item.mime_type == mime
    assert item.derivatives == {"avif": "picture.avif", "webp": "picture.webp"}
    assert (site.uploads_dir / FOLDER / f"picture.orig.{ext}").read_bytes() == data


def test_duplicate_names_get_a_suffix_and_nothing_is_overwritten(site: Site, library: MediaLibrary) -> None:
    first = library.ingest(images.jpeg((500, 300)), "photo.jpg")
    before = files(site.uploads_dir)
    second = library.ingest(images.jpeg((700, 300)), "Photo.JPG")
    third = library.ingest(images.jpeg((300, 300)), "photo.jpeg")
    assert (first.file, second.file, third.file) == ("photo.jpg", "photo-2.jpg", "photo-3.jpg")
    after = files(site.uploads_dir)
    assert all(after[k] == v for k, v in before.items())
    assert second.sidecar == "photo-2.yaml" and second.variants[480]["avif"] == "photo-2-480w.avif"


def test_folder_given_is_sanitized(library: MediaLibrary) -> None:
    item = library.ingest(images.jpeg((100, 100)), "a.jpg", folder="Products/Spring Sale 2026")
    assert item.folder == "products/spring-sale-2026"
    assert library.ingest(images.jpeg((100, 100)), "a.jpg", folder="2026/05/").folder == "2026/05"


# -- refusals leave nothing behind ---------------------------------------------------------------

REFUSALS = [
    ("gif", lambda: images.animated("GIF"), "photo.gif", UnsupportedMediaType, "GIF"),
    ("php", lambda: images.PHP, "photo.jpg", UnsupportedMediaType, "not a JPEG"),
    ("svg", lambda: images.SVG, "logo.svg", UnsupportedMediaType, "SVG"),
    ("html", lambda: images.HTML, "page.png", UnsupportedMediaType, "not a JPEG"),
    ("animated webp", lambda: images.animated("WEBP"), "anim.webp", Invalid, "animated"),
    ("animated avif", lambda: images.animated("AVIF"), "anim.avif", Invalid, "animated"),
    ("fits", lambda: images.FITS, "sky.jpg", UnsupportedMediaType, "not a JPEG"),
    ("truncated", images.truncated_jpeg, "cut.jpg", Invalid, "truncated or corrupt"),
    ("bomb", images.bomb_png, "bomb.png", Invalid, "more than 50,000,000 pixels"),
    ("between limit and 2x", lambda: images.bomb_png(8000, 8000), "big.png", Invalid, "more than"),
    ("empty", lambda: b"", "empty.jpg", UnsupportedMediaType, "not a JPEG"),
    ("jpeg magic only", lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 100, "x.jpg", Invalid, "corrupt"),
]


@pytest.mark.parametrize(("name", "make", "filename", "error", "text"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_uploads_leave_no_file(
    site: Site, library: MediaLibrary, name: str, make: object, filename: str, error: type, text: str
) -> None:
    library.ingest(images.jpeg((100, 100)), "existing.jpg")
    before = files(site.uploads_dir)
    data = make()  # type: ignore[operator]
    with pytest.raises(error) as caught:
        library.ingest(data, filename)
    assert text in caught.value.message
    assert files(site.uploads_dir) == before
    assert len(library) == 1


def test_a_jpeg_html_polyglot_is_stored_as_a_jpeg(site: Site, library: MediaLibrary) -> None:
    data = images.jpeg((200, 100)) + images.HTML  # valid JPEG, HTML after the end-of-image marker
    item = library.ingest(data, "page.html")
    assert item.mime_type == "image/jpeg" and item.file == "page.jpg"  # the type and extension come from the bytes
    assert (site.uploads_dir / item.rel(item.file)).read_bytes() == data


def test_bomb_is_refused_from_the_header_without_decoding(library: MediaLibrary) -> None:
    data = images.bomb_png()
    process = psutil.Process()
    rss = process.memory_info().rss
    with pytest.raises(Invalid):
        library.ingest(data, "bomb.png")
    assert process.memory_info().rss - rss < 50 * 2**20  # the work bound: decoding it would take gigabytes


@pytest.mark.parametrize(
    "folder", ["../../etc", "/abs", "a/../b", "\\\\server\\share", "C:/x", ".hidden", "a//b", "x\x00"]
)
def test_folder_outside_uploads_is_refused(site: Site, library: MediaLibrary, folder: str) -> None:
    with pytest.raises(BadRequest):
        library.ingest(images.jpeg((50, 50)), "a.jpg", folder=folder)
    assert files(site.uploads_dir) == {}


def test_oversized_bytes_are_refused(site: Site, library: MediaLibrary) -> None:
    with pytest.raises(PayloadTooLarge):
        library.ingest(b"\xff\xd8\xff" + b"\x00" * site.media.max_bytes, "big.jpg")


def test_a_failed_write_removes_every_file_of_the_upload(
    site: Site, library: MediaLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = files_module.atomic_write
    calls = []

    def failing(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(files_module, "atomic_write", failing)
    with pytest.raises(OSError):
        library.ingest(images.jpeg((1000, 500)), "photo.jpg")
    assert files(site.uploads_dir) == {}
    assert len(library) == 0


def test_a_conversion_past_the_deadline_is_refused_and_writes_nothing(site: Site) -> None:
    slow = MediaLibrary(site, timeout=0.001)
    try:
        with pytest.raises(Invalid, match="longer than"):
            slow.ingest(images.jpeg((2000, 1500)), "slow.jpg")
    finally:
        slow.close()
    assert files(site.uploads_dir) == {}


def test_a_worker_that_dies_mid_conversion_is_a_422_and_the_pool_recovers(site: Site, library: MediaLibrary) -> None:
    library.ingest(images.jpeg((64, 64)), "warm.jpg")  # the worker processes are up
    before = files(site.uploads_dir)
    outcome: dict[str, str] = {}

    def workers() -> list[psutil.Process]:
        # Workers are forked by multiprocessing's forkserver (our child): its children.
        return [worker for child in psutil.Process().children() for worker in child.children()]

    def cpu(worker: psutil.Process) -> float:
        try:
            times = worker.cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return float(times.user + times.system)

    idle = {w.pid: cpu(w) for w in workers()}

    def upload() -> None:
        try:
            library.ingest(images.jpeg((4000, 3000)), "doomed.jpg")
            outcome["result"] = "stored"
        except Invalid as exc:
            outcome["result"] = exc.message

    thread = threading.Thread(target=upload)
    thread.start()
    # Mid-conversion, whatever the machine's speed: a worker has used CPU time since the warm-up
    # (a 12-megapixel image takes it seconds), not a fixed pause that a slow start could outlast.
    wait_until(
        lambda: any(cpu(w) > idle.get(w.pid, 0.0) + 0.05 for w in workers()) or not thread.is_alive(),
        message="no worker started converting",
    )
    assert thread.is_alive(), outcome  # still converting: the kill lands mid-conversion
    for worker in workers():
        worker.kill()  # as a codec crash would
    thread.join(60)
    assert "converter stopped" in outcome["result"]
    assert files(site.uploads_dir) == before
    assert library.ingest(images.jpeg((64, 64)), "after.jpg").file == "after.jpg"  # a new pool took over


CHILD = """
import sys
from cms.config import Site
from cms.media import MediaLibrary
from tests.media import images

if __name__ == "__main__":
    library = MediaLibrary.load(Site.load(sys.argv[1]))
    library.ingest(images.jpeg((64, 64)), "a.jpg")
    print("ready", flush=True)
    sys.stdin.read()  # until killed
"""


def test_workers_exit_when_their_owner_is_killed(site: Site, tmp_path: Path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    owner = subprocess.Popen(
        [sys.executable, str(script), str(site.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == b"ready"
        helpers = psutil.Process(owner.pid).children(recursive=True)  # forkserver, its workers, resource tracker
        assert len(helpers) >= 3
        owner.kill()  # no shutdown code runs
        owner.wait(10)
        gone, alive = psutil.wait_procs(helpers, timeout=10)
        assert alive == [], f"left running after kill -9 of their owner: {alive}"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        for stream in (owner.stdin, owner.stdout):
            if stream is not None:
                stream.close()


def test_sniffing_ignores_names() -> None:
    assert sniff(images.jpeg((10, 10))[:64]).name == "jpeg"  # type: ignore[union-attr]
    assert sniff(images.png_alpha((10, 10))[:64]).name == "png"  # type: ignore[union-attr]
    assert sniff(images.webp((10, 10))[:64]).name == "webp"  # type: ignore[union-attr]
    assert sniff(images.avif((10, 10))[:64]).name == "avif"  # type: ignore[union-attr]
    assert sniff(images.PHP) is None and sniff(images.SVG) is None and sniff(b"GIF89a") is None


# -- strip_original --------------------------------------------------------------------------------


def test_strip_original_drops_gps_and_keeps_orientation(make_site: MakeSite) -> None:
    site = make_site(config="[media]\nstrip_original = true\n")
    lib = MediaLibrary(site, clock=lambda: NOW)
    try:
        jpg = lib.ingest(images.jpeg((300, 200), orientation=6, gps=True), "gps.jpg")
        png = lib.ingest(images.png_alpha((64, 64)), "alpha.png")
    finally:
        lib.close()
    stored = opened(site, jpg.rel(jpg.file))
    assert stored.getexif().get(0x8825) is None
    assert stored.getexif().get(0x0112) == 6 and stored.size == (300, 200)  # still displays upright
    assert jpg.checksum == "sha256:" + hashlib.sha256((site.uploads_dir / jpg.rel(jpg.file)).read_bytes()).hexdigest()
    assert opened(site, png.rel(png.file)).mode == "RGBA"


# -- sidecars, load, update, delete, references ----------------------------------------------------


def test_sidecar_round_trips_and_load_rebuilds_the_library(site: Site, library: MediaLibrary) -> None:
    item = library.ingest(images.jpeg((1000, 700)), "cup.jpg", alt="A cup", caption="no", credit="Mara")
    text = (site.uploads_dir / item.rel(item.sidecar)).read_text()
    assert text.startswith(f"id: {item.id}\nfile: cup.jpg\n")
    assert 'caption: "no"' in text  # YAML 1.1 would read a bare no as false
    reloaded = MediaLibrary.load(site)
    assert reloaded.get(item.id) == item
    assert reloaded.role_of(f"{FOLDER}/cup-480w.webp") == (item, "derivative")
    assert reloaded.role_of(f"{FOLDER}/cup.jpg") == (item, "original")


def test_update_changes_only_the_text_lines(site: Site, library: MediaLibrary) -> None:
    item = library.ingest(images.jpeg((100, 100)), "cup.jpg")
    path = site.uploads_dir / item.rel(item.sidecar)
    before = path.read_text().splitlines()
    updated = library.update(item.id, {"alt": "A blue cup", "credit": None})
    after = path.read_text().splitlines()
    assert updated.alt == "A blue cup" and library.get(item.id).alt == "A blue cup"
    assert [a for a, b in zip(before, after, strict=True) if a != b] == ['alt: ""']
    with pytest.raises(Invalid):
        library.update(item.id, {"width": 5})
    with pytest.raises(Invalid):
        library.update(item.id, {"alt": 5})


def test_delete_removes_every_file(site: Site, library: MediaLibrary) -> None:
    keep = library.ingest(images.jpeg((100, 100)), "keep.jpg")
    before = files(site.uploads_dir)
    item = library.ingest(images.jpeg((1000, 700)), "gone.jpg")
    library.delete(item.id)
    assert files(site.uploads_dir) == before
    assert [i.id for i in library.items()] == [keep.id]


def test_references_find_featured_images_and_body_links(site: Site, library: MediaLibrary) -> None:
    item = library.ingest(images.jpeg((1000, 700)), "cover.jpg")
    other = library.ingest(images.jpeg((100, 100)), "cover-b.jpg")
    posts = site.content_dir / "posts"
    (posts / "a.md").write_text(f"---\ntitle: A\nfeatured_image: {item.path}\n---\nx\n")
    (posts / "b.md").write_text(f"---\ntitle: B\n---\n![x](/uploads/{item.rel(item.variants[480]['webp'])})\n")
    (posts / "c.md").write_text(f"---\ntitle: C\n---\n<img src='https://x.test/uploads/{FOLDER}/cover.jpg'>\n")
    (posts / "d.md").write_text(f"---\ntitle: D\n---\n![x](/uploads/{FOLDER}/cover-b.jpg) {FOLDER}/cover.jpg.txt\n")
    index = Index.load(site, background_search=False)
    assert sorted(d.slug for d in library.references(item, index.docs.values())) == ["a", "b", "c"]
    assert [d.slug for d in library.references(other, index.docs.values())] == ["d"]


def test_items_filter_and_order(library: MediaLibrary) -> None:
    a = library.ingest(images.jpeg((100, 100)), "alpha.jpg", alt="Roaster at work")
    b = library.ingest(images.png_alpha((64, 64)), "beta.png", folder="logos")
    c = library.ingest(images.webp((64, 64)), "gamma.webp", folder="logos/old")
    assert [i.id for i in library.items()] == [c.id, b.id, a.id]
    assert [i.id for i in library.items(folder="logos")] == [c.id, b.id]
    assert [i.id for i in library.items(mime_type="image/png")] == [b.id]
    assert [i.id for i in library.items(search="ROASTER")] == [a.id]
    assert [i.id for i in library.items(search="gamma")] == [c.id]


# -- files dropped by hand, rebuild, watcher, CLI --------------------------------------------------


def test_sync_takes_in_a_dropped_image_and_reads_hand_edited_sidecars(site: Site, library: MediaLibrary) -> None:
    folder = site.uploads_dir / "team"
    folder.mkdir(parents=True)
    (folder / "Group Photo.JPG").write_bytes(images.jpeg((1000, 500)))
    (folder / "notes.txt").write_text("not an image")
    (folder / "fake.png").write_bytes(images.PHP)
    new = library.sync([folder / "Group Photo.JPG", folder / "notes.txt", folder / "fake.png"])
    assert len(new) == 1
    item = new[0]
    assert item.file == "Group Photo.JPG" and item.sidecar == "group-photo.yaml" and item.folder == "team"
    assert sorted(os.listdir(folder)) == sorted(
        ["Group Photo.JPG", "notes.txt", "fake.png", *item.generated, "group-photo.yaml"]
    )
    assert "team/fake.png" in library.problems
    assert library.sync([folder / "fake.png"]) == []  # failed once, unchanged: not converted again
    sidecar = folder / "group-photo.yaml"
    sidecar.write_text(sidecar.read_text().replace('alt: ""', "alt: Everyone"))
    assert library.sync([sidecar]) == []
    assert library.get(item.id).alt == "Everyone"
    sidecar.unlink()
    os.unlink(folder / "group-photo.webp")
    library.sync([sidecar])  # sidecar gone: the image is taken in again, as a new item
    assert item.id not in {i.id for i in library.items()} and len(library) == 1


def test_a_dropped_avif_is_renamed_orig(site: Site, library: MediaLibrary) -> None:
    folder = site.uploads_dir / "drops"
    folder.mkdir(parents=True)
    (folder / "shot.avif").write_bytes(images.avif((640, 480)))
    (item,) = library.sync([folder / "shot.avif"])
    assert item.file == "shot.orig.avif" and item.derivatives["avif"] == "shot.avif"
    assert opened(site, "drops/shot.avif").getexif().get(0x8825) is None


def test_rebuild_regenerates_with_new_settings_and_prunes(make_site: MakeSite, site: Site) -> None:
    lib = MediaLibrary(site, clock=lambda: NOW)
    item = lib.ingest(images.jpeg((2000, 1000)), "wide.jpg", alt="kept")
    gone = lib.ingest(images.jpeg((100, 100)), "gone.jpg")
    lib.close()
    os.unlink(site.uploads_dir / gone.rel(gone.file))
    (site.uploads_dir / "dropped.png").write_bytes(images.png_alpha((64, 64)))
    text = (site.root / "cms.toml").read_text() + "[media]\nwidths = [320, 1200]\n"
    (site.root / "cms.toml").write_text(text)
    wider = Site.load(site.root)
    lib = MediaLibrary.load(wider, clock=lambda: NOW)
    try:
        done: list[tuple[str, int, int]] = []
        report = lib.rebuild(lambda path, n, total: done.append((path, n, total)))
    finally:
        lib.close()
    assert [i.id for i in report.regenerated] == [item.id] and not report.failed
    assert [i.file for i in report.ingested] == ["dropped.png"]
    assert report.pruned == [gone.rel(gone.sidecar)]
    again = lib.get(item.id)
    assert sorted(again.variants) == [320, 1200] and again.alt == "kept"
    names = set(os.listdir(site.uploads_dir / FOLDER))
    assert "wide-480w.avif" not in names and "wide-1200w.webp" in names and "gone.yaml" not in names
    assert not any(n.startswith("gone") for n in names)
    assert done == [(item.rel(item.file), 1, 2), ("dropped.png", 2, 2)]


def test_cli_media_rebuild(site: Site, library: MediaLibrary) -> None:
    library.ingest(images.jpeg((600, 400)), "one.jpg")
    (site.uploads_dir / "bad.jpg").write_bytes(images.truncated_jpeg())
    result = CliRunner().invoke(main, ["media", "rebuild", "--site", str(site.root)])
    assert result.exit_code == 1, result.output
    assert f"[1/2] {FOLDER}/one.jpg" in result.output and "[2/2] bad.jpg" in result.output
    assert "1 regenerated, 0 new, 0 pruned, 1 failed" in result.output
    assert "bad.jpg" in result.stderr and "truncated" in result.stderr


def test_uploads_watcher_takes_in_dropped_images(site: Site, library: MediaLibrary) -> None:
    events: list[Event] = []
    bus = Bus()
    bus.subscribe(events.append)
    watcher = UploadsWatcher(library, bus, debounce_ms=100)
    watcher.start()
    try:
        (site.uploads_dir / "notes.txt").write_text("negative control")
        (site.uploads_dir / "drop.jpg").write_bytes(images.jpeg((800, 600)))
        wait_until(lambda: (site.uploads_dir / "drop.yaml").exists(), message="drop.jpg was not taken in")
        wait_until(lambda: events, message="no media.uploaded event")
    finally:
        watcher.stop()
    assert [e.name for e in events] == ["media.uploaded"]
    assert events[0].data["media"]["file"] == "drop.jpg" and events[0].source == "watch"
    assert not (site.uploads_dir / "notes.yaml").exists()


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("widths = [0]", "media.widths"),
        ("avif_quality = 101", "media.avif_quality"),
        ("avif_speed = 11", "media.avif_speed"),
        ("folder_pattern = '../%Y'", "media.folder_pattern"),
        ("folder_pattern = '/srv/%Y'", "media.folder_pattern"),
        ("max_bytes = 0", "media.max_bytes"),
    ],
)
def test_media_config_is_checked(make_site: MakeSite, toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_site(config=f"[media]\n{toml}\n")
    assert caught.value.key == key
