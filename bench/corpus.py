"""A deterministic benchmark site: `python -m bench.corpus --posts N --out DIR [--seed 1]`.

Everything is drawn from `random.Random(seed)` and a fixed base date (never the wall clock, never
set or hash order), so two runs with the same arguments write byte-identical trees. The text is
English-like (a few hundred real words, sentences of varying length) and the Markdown uses what
real posts use: headings, lists, links, inline and fenced code, images, quotes and tables.
This is a generator, not the CMS write path: files are written with plain open().write().
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cms.content.ulid import encode

# -- vocabulary ----------------------------------------------------------------------------------

FUNCTION_WORDS = """
the a an of to and in is that for it with as on this be are by we you can or when not from at
will your our more each one how which but if so all they only than then into before after every
most some many other their its was has have do does should would could may must also just very
""".split()
NOUNS = """
server cache request response query index database table column record file folder path
module function class method object value type field schema error exception test suite build
release version branch commit merge review change patch feature bug fix issue ticket user team
project product customer client service endpoint route handler middleware template theme page
post article draft editor author reader image upload thumbnail format layout grid component
state event message queue worker thread process memory disk network latency throughput budget
metric dashboard alert log trace profile benchmark deploy pipeline container cluster node
region backup snapshot migration config setting option flag default variable constant string
number list map set tree graph key token session cookie header payload body document section
paragraph sentence word link anchor search filter sort page archive feed sitemap plugin library
framework tool script command terminal shell editor browser device screen keyboard mouse window
garden kitchen coffee morning weekend city river mountain journey story lesson habit idea plan
goal result pattern principle tradeoff decision question answer problem solution example
""".split()
VERBS = """
build run test deploy cache index query parse render write read load save store fetch send
receive handle check validate measure profile optimize refactor rename move split merge sort
filter search compare measure review ship release publish update delete restore create
design explain describe learn teach share discover improve reduce increase avoid prefer choose
keep start stop wait retry schedule notify trigger watch follow track explore debug fix
""".split()
ADJECTIVES = """
fast slow simple small large quick careful clean clear stable reliable robust fragile modern
legacy new old good bad better best common rare useful practical complex subtle obvious hidden
public private local remote static dynamic lazy eager strict loose safe unsafe plain rich
cheap expensive quiet noisy early late final initial primary secondary default custom
""".split()
ADVERBS = "quickly slowly carefully usually rarely often always never clearly simply really almost".split()

# Function words dominate real text; repeating them in the draw list gives a Zipf-ish profile
# while every draw stays a uniform `choices` call (the fastest thing `random` offers).
_DRAW = FUNCTION_WORDS * 6 + NOUNS * 2 + VERBS * 2 + ADJECTIVES * 2 + ADVERBS
_SENTENCE_LENGTHS = (4, 6, 7, 8, 9, 10, 11, 12, 12, 13, 14, 15, 16, 17, 18, 20, 22, 24, 27, 31, 36)

CATEGORIES = (  # (name, parent slug)
    ("Engineering", None),
    ("Backend", "engineering"),
    ("Frontend", "engineering"),
    ("DevOps", "engineering"),
    ("Databases", "backend"),
    ("Performance", "engineering"),
    ("Testing", "engineering"),
    ("Security", None),
    ("Design", None),
    ("Product", None),
    ("Data Science", None),
    ("Machine Learning", "data-science"),
    ("Career", None),
    ("Culture", None),
    ("Tutorials", None),
    ("Reviews", None),
    ("News", None),
    ("Releases", "news"),
    ("Open Source", None),
    ("Mobile", "frontend"),
)
AUTHORS = (
    "Ada Moreau",
    "Bilal Haddad",
    "Chen Wei",
    "Dana Kowalski",
    "Emeka Obi",
    "Freya Lind",
    "Gabriel Souza",
    "Hana Sato",
    "Ines Duarte",
    "Jonah Reyes",
)
TAG_ROOTS = """
python javascript rust go sql css html markdown yaml json api rest graphql http cache search
index queries testing ci docker kubernetes linux bash git security auth performance memory
profiling latency design typography accessibility mobile ios android cloud aws backups logging
metrics tracing releases refactoring architecture databases sqlite postgres redis webhooks
static-sites themes images video writing career hiring remote teams coffee travel books
""".split()
READING_LEVELS = ("beginner", "intermediate", "advanced")
LANGUAGES = ("python", "js", "bash", "json")

BASE_DATE = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 5 * 365 * 86_400
FUTURE_DATE = datetime(2099, 1, 1, tzinfo=UTC)
N_TAGS = 200
N_TAG_FILES = 12
DRAFT_RATE = 0.03
SCHEDULED_RATE = 0.01

POSTS_SCHEMA = """\
# Custom fields of the benchmark posts (the built-in post fields stay).
label: Posts
fields:
  - name: rating
    type: integer
    min: 1
    max: 5
  - name: featured
    type: boolean
  - name: reading_level
    type: select
    options: [beginner, intermediate, advanced]
"""


# -- small pieces --------------------------------------------------------------------------------


def ulid(rng: random.Random, when: datetime) -> str:
    """A ULID from a moment and the seeded RNG: 48-bit milliseconds + 80 random bits, Crockford base32."""
    ms = int(when.timestamp()) * 1000 + rng.randrange(1000)
    n = (ms << 80) | rng.getrandbits(80)
    return encode(n)


def slug_of(text: str) -> str:
    """A slug for generated ASCII text (the same result cms.content.names.slugify gives)."""
    out = "".join(c if c.isalnum() else " " for c in text.lower())
    return "-".join(out.split())


def plural(noun: str) -> str:
    """English plural of a vocabulary noun."""
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _q(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one, for ASCII text)."""
    return json.dumps(text)


def sentence(rng: random.Random, length: int | None = None) -> str:
    """One English-like sentence of varying length."""
    n = length or rng.choice(_SENTENCE_LENGTHS)
    words = rng.choices(_DRAW, k=n)
    words[0] = words[0].capitalize()
    if n > 9:
        cut = rng.randrange(3, n - 3)
        words[cut] += ","
    end = rng.random()
    return " ".join(words) + ("?" if end < 0.05 else "!" if end < 0.07 else ".")


def _phrase(rng: random.Random) -> str:
    """A short title-like phrase."""
    pattern = rng.randrange(4)
    if pattern == 0:
        return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    if pattern == 1:
        return f"{rng.choice(VERBS)} the {rng.choice(NOUNS)}"
    if pattern == 2:
        return f"{rng.choice(NOUNS)} and {rng.choice(NOUNS)}"
    return f"{rng.choice(ADVERBS)} {rng.choice(VERBS)} {plural(rng.choice(NOUNS))}"


def _heading(rng: random.Random) -> str:
    text = _phrase(rng)
    return text[0].upper() + text[1:]


def title(rng: random.Random) -> str:
    """A realistic post title."""
    a, n1, n2, v = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(VERBS)
    pattern = rng.randrange(8)
    if pattern == 0:
        text = f"How to {v} a {a} {n1}"
    elif pattern == 1:
        text = f"Why your {n1} needs a {a} {n2}"
    elif pattern == 2:
        text = f"{rng.randint(3, 12)} ways to {v} your {n1}"
    elif pattern == 3:
        text = f"A {a} guide to {n1} {plural(n2)}"
    elif pattern == 4:
        text = f"What we learned when we tried to {v} the {n1}"
    elif pattern == 5:
        text = f"The {a} {n1}: notes on {plural(n2)}"
    elif pattern == 6:
        text = f"{n1} vs {n2}: which one should you {v}?"
    else:
        text = f"Notes from a {a} {n1} {n2}"
    return text[0].upper() + text[1:]


# -- Markdown blocks -----------------------------------------------------------------------------


class _Body:
    """Builds one Markdown body and counts its words as it goes."""

    def __init__(self, rng: random.Random, slugs: list[str], titles: list[str]) -> None:
        self.rng = rng
        self.slugs = slugs
        self.titles = titles
        self.blocks: list[str] = []
        self.words = 0

    def add(self, text: str, words: int) -> None:
        self.blocks.append(text)
        self.words += words

    def paragraph(self, sentences: int, *, internal: bool = False, external: bool = False, code: bool = False) -> None:
        rng = self.rng
        parts = [sentence(rng) for _ in range(sentences)]
        if internal:
            i = rng.randrange(len(self.slugs))
            parts.append(f"We wrote about this in [{self.titles[i]}](/posts/{self.slugs[i]}/).")
        if external:
            noun, verb = rng.choice(NOUNS), rng.choice(VERBS)
            parts.insert(
                rng.randrange(len(parts) + 1),
                f"The [{noun} documentation](https://docs.example.org/{noun}/{verb}.html) explains how to {verb} it.",
            )
        if code:
            parts.append(f"Call `{rng.choice(VERBS)}_{rng.choice(NOUNS)}()` before you {rng.choice(VERBS)} the cache.")
        text = " ".join(parts)
        self.add(text, text.count(" ") + 1)

    def section(self, level: int = 2) -> None:
        self.add("#" * level + " " + _heading(self.rng), 3)

    def bullets(self) -> None:
        rng = self.rng
        items = [f"- {sentence(rng, rng.randint(3, 9))}" for _ in range(rng.randint(3, 6))]
        self.add("\n".join(items), 6 * len(items))

    def numbered(self) -> None:
        rng = self.rng
        items = [f"{i}. {sentence(rng, rng.randint(4, 10))}" for i in range(1, rng.randint(3, 6) + 1)]
        self.add("\n".join(items), 7 * len(items))

    def code_block(self) -> None:
        rng = self.rng
        lang = rng.choice(LANGUAGES)
        noun, noun2, verb = rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(VERBS)
        if lang == "python":
            code = (
                f"def {verb}_{noun}({plural(noun2)}, limit=10):\n"
                f'    """{sentence(rng, 8)}"""\n'
                f"    items = [x for x in {plural(noun2)} if x.{noun}]\n"
                f"    return sorted(items, key=lambda x: x.{noun})[:limit]"
            )
        elif lang == "js":
            code = (
                f"export async function {verb}{noun.capitalize()}({noun2}) {{\n"
                f"  const response = await fetch(`/api/{plural(noun)}/${{{noun2}.id}}`);\n"
                f'  if (!response.ok) throw new Error("{sentence(rng, 6)}");\n'
                "  return response.json();\n"
                "}"
            )
        elif lang == "bash":
            code = (
                f"$ export {noun.upper()}_{noun2.upper()}=1\n"
                f"$ ./scripts/{verb}.sh --{noun} {plural(noun2)} | grep -c {noun}\n"
                f"$ git commit -am '{verb} the {noun}'"
            )
        else:
            code = (
                "{\n"
                f'  "{noun}": "{verb}",\n'
                f'  "{noun2}": {rng.randint(1, 999)},\n'
                f'  "enabled": {"true" if rng.random() < 0.5 else "false"},\n'
                f'  "tags": ["{rng.choice(NOUNS)}", "{rng.choice(NOUNS)}"]\n'
                "}"
            )
        self.add(f"```{lang}\n{code}\n```", 20)

    def image(self) -> None:
        rng = self.rng
        noun = rng.choice(NOUNS)
        alt = f"A {rng.choice(ADJECTIVES)} {noun} on the {rng.choice(NOUNS)}"
        self.add(f"![{alt}](/uploads/images/{noun}-{rng.randint(1, 400)}.jpg)", 6)

    def quote(self) -> None:
        text = " ".join(sentence(self.rng) for _ in range(self.rng.randint(1, 3)))
        self.add("> " + text, text.count(" ") + 1)

    def table(self) -> None:
        rng = self.rng
        heads = [rng.choice(NOUNS).capitalize() for _ in range(3)]
        rows = [f"| {' | '.join(heads)} |", "| --- | --- | ---: |"]
        for _ in range(rng.randint(3, 6)):
            rows.append(f"| {rng.choice(NOUNS)} | {rng.choice(ADJECTIVES)} | {rng.randint(1, 5000)} |")
        self.add("\n".join(rows), 3 * len(rows))

    def subsection(self) -> None:
        self.section(3)
        self.paragraph(self.rng.randint(1, 3))

    def text(self) -> str:
        return "\n\n".join(self.blocks) + "\n"


_REQUIRED = ("bullets", "numbered", "code_block", "image", "quote", "subsection")
_EXTRAS = ("bullets", "numbered", "code_block", "image", "subsection", "paragraph", "paragraph", "paragraph")


def body(rng: random.Random, target_words: int, slugs: list[str], titles: list[str]) -> str:
    """A Markdown body of about `target_words` words holding every kind of block once or more."""
    b = _Body(rng, slugs, titles)
    short = target_words < 700
    b.paragraph(rng.randint(2, 4), internal=True)
    required = list(_REQUIRED)
    if rng.random() < 0.3:
        required.append("table")
    rng.shuffle(required)
    first = True
    while required or b.words < target_words:
        b.section()
        b.paragraph(rng.randint(1, 2) if short else rng.randint(2, 5), external=first, code=first)
        first = False
        for _ in range(2 if short else 1):
            extra = required.pop() if required else rng.choice(_EXTRAS)
            if extra == "paragraph":
                b.paragraph(rng.randint(2, 5), internal=rng.random() < 0.2, code=rng.random() < 0.3)
            else:
                getattr(b, extra)()
    return b.text()


# -- files ---------------------------------------------------------------------------------------


def _post(rng: random.Random, i: int, slugs: list[str], titles: list[str], tags: list[str], cum: list[float]) -> str:
    if rng.random() < SCHEDULED_RATE:
        when = FUTURE_DATE + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    else:
        when = BASE_DATE + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    lines = ["---", f"id: {ulid(rng, when)}", f"title: {_q(titles[i])}", f"date: {_iso(when)}"]
    if rng.random() < 0.3:
        lines.append(f"updated: {_iso(when + timedelta(seconds=rng.randrange(1, 400 * 86_400)))}")
    if rng.random() < 0.9:  # the rest get an excerpt derived from the body
        lines.append(f"summary: {_q(sentence(rng, rng.randint(12, 28)))}")
    lines.append(f"author: {slug_of(rng.choice(AUTHORS))}")
    cats = [slug_of(rng.choice(CATEGORIES)[0])]
    if rng.random() < 0.15:
        second = slug_of(rng.choice(CATEGORIES)[0])
        if second != cats[0]:
            cats.append(second)
    lines.append("categories:")
    lines.extend(f"  - {c}" for c in cats)
    chosen: list[str] = []
    for tag in rng.choices(tags, cum_weights=cum, k=rng.randint(1, 6)):
        if tag not in chosen:
            chosen.append(tag)
    lines.append("tags:")
    lines.extend(f"  - {t}" for t in chosen)
    if rng.random() < 0.4:
        lines.append(f"featured_image: /uploads/images/{rng.choice(NOUNS)}-{rng.randint(1, 400)}.jpg")
    if rng.random() < 0.7:
        lines.append(f"rating: {rng.randint(1, 5)}")
    if rng.random() < 0.5:
        lines.append(f"featured: {'true' if rng.random() < 0.2 else 'false'}")
    if rng.random() < 0.6:
        lines.append(f"reading_level: {rng.choice(READING_LEVELS)}")
    if rng.random() < DRAFT_RATE:
        lines.append("draft: true")
    lines.append("---")
    text = body(rng, rng.randint(300, 1850), slugs, titles)  # the last section overshoots a little
    return "\n".join(lines) + "\n" + text


def _tag_pool(rng: random.Random) -> list[str]:
    pool = list(TAG_ROOTS)
    seen = set(pool)  # membership only; order comes from the list
    while len(pool) < N_TAGS:
        tag = f"{rng.choice(ADJECTIVES)}-{rng.choice(TAG_ROOTS)}"
        if tag not in seen:
            seen.add(tag)
            pool.append(tag)
    return pool[:N_TAGS]


def _titles(rng: random.Random, n: int) -> tuple[list[str], list[str]]:
    titles: list[str] = []
    slugs: list[str] = []
    taken: set[str] = set()
    for _ in range(n):
        text = title(rng)
        slug = base = slug_of(text)
        k = 2
        while slug in taken:
            slug = f"{base}-{k}"
            k += 1
        taken.add(slug)
        titles.append(text)
        slugs.append(slug)
    return titles, slugs


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _write_terms(rng: random.Random, content: Path, tags: list[str]) -> None:
    for name, parent in CATEGORIES:
        lines = ["---", f"name: {_q(name)}", f"description: {_q(sentence(rng, rng.randint(8, 16)))}"]
        if parent:
            lines.append(f"parent: {parent}")
        _write(content / "categories" / f"{slug_of(name)}.md", "\n".join([*lines, "---", ""]))
    for tag in tags[:N_TAG_FILES]:
        text = f"---\nname: {_q(tag.replace('-', ' ').capitalize())}\ndescription: {_q(sentence(rng, 10))}\n---\n"
        _write(content / "tags" / f"{tag}.md", text)
    for name in AUTHORS:
        slug = slug_of(name)
        bio = " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))
        head = f"---\nname: {_q(name)}\nemail: {slug}@example.org\nrole: Writer\n---\n"
        _write(content / "authors" / f"{slug}.md", head + bio + "\n")


def generate(root: Path, posts: int, seed: int = 1) -> None:
    """Write a complete benchmark site (cms.toml + content/) into `root`, which must not hold content/ yet."""
    root = Path(root)
    content = root / "content"
    if content.exists():
        raise FileExistsError(f"{content} exists; generate into a new folder")
    rng = random.Random(seed)
    for folder in ("posts", "categories", "tags", "authors"):
        (content / folder).mkdir(parents=True)
    _write(root / "cms.toml", '[site]\ntitle = "Bench"\ntimezone = "UTC"\n')
    _write(content / "posts" / "_type.yaml", POSTS_SCHEMA)
    tags = _tag_pool(rng)
    _write_terms(rng, content, tags)
    titles, slugs = _titles(rng, posts)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(tags))]  # a few popular tags, a long tail
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    posts_dir = content / "posts"
    for i in range(posts):
        _write(posts_dir / f"{slugs[i]}.md", _post(rng, i, slugs, titles, tags, cum))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, required=True, help="number of posts")
    parser.add_argument("--out", type=Path, required=True, help="site folder to create")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same bytes)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        generate(args.out, args.posts, args.seed)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.posts} posts to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
