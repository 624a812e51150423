"""The site's gettext catalogs: every message of monitor/ has its French and its English text, with the typography
of each language, and the .po files are what the site reads (no .mo to compile)."""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from monitor.i18n import LANGS, Lang, translate, translations

ROOT = Path(__file__).resolve().parents[1]
# What .ci/catalogs.sh gives pybabel: the defaults, N_, said() and the message (second argument) of translate()
KEYWORDS = {**DEFAULT_KEYWORDS, "said": None, "translate": (2,), "translate_plural": (2, 3)}
FRENCH_SPACES = re.compile(r"(?<=\S) ([:;?!»])|« ")  # a plain space where French wants a no-break one
ENGLISH_SPACES = re.compile(r"[\s\u00a0\u202f][:;?!](?=\s|$|<)")  # " :" is French typography


def extracted() -> dict[str, Message]:
    """Every message of monitor/'s code and templates, as `bash .ci/catalogs.sh` extracts them."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]  # Babel leaves it untyped
    found: dict[str, Message] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT / "monitor", method_map, options_map, keywords=KEYWORDS
    ):
        key = message if isinstance(message, str) else message[0]
        found[key] = Message(message)
    return found


def catalog(lang: Lang) -> Catalog:
    with (ROOT / "monitor" / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=lang)


def key_of(message: Message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def texts(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string or ""]


def messages(lang: Lang) -> Iterator[Message]:
    return (message for message in catalog(lang) if message.id)


def test_the_code_has_messages_to_translate() -> None:
    found = extracted()
    assert len(found) > 250, len(found)  # the pages, the views, the feeds: not a mapping that found nothing
    assert "Network status" in found and "Unavailable" in found  # a template's _() and a Python N_()
    assert "Advice of %(when)s." in found  # a translate(lang, …) of a view


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_has_a_text_in_each_language(lang: Lang) -> None:
    found = catalog(lang)
    missing = [key for key in extracted() if key not in found or not all(texts(found[key]))]
    assert not missing, f"{len(missing)} message(s) without a {lang} text (bash .ci/catalogs.sh, then fill): {missing}"
    fuzzy = [message.id for message in messages(lang) if message.fuzzy]
    assert not fuzzy, f"fuzzy {lang} texts are not shown: {fuzzy}"


@pytest.mark.parametrize("lang", LANGS)
def test_no_message_is_left_in_a_catalog_once_the_code_dropped_it(lang: Lang) -> None:
    used = set(extracted())
    stale = [message.id for message in messages(lang) if key_of(message) not in used]
    assert not stale, f"{lang}: messages no longer used (bash .ci/catalogs.sh drops them): {stale}"


@pytest.mark.parametrize("lang", LANGS)
def test_placeholders_and_plural_forms_match(lang: Lang) -> None:
    problems = [(message.id, [str(e) for e in errors]) for message, errors in catalog(lang).check() if errors]
    assert not problems, problems


def _brace_names(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("lang", LANGS)
def test_brace_placeholders_match(lang: Lang) -> None:
    """`{name}` placeholders (the command line's and the config problems' `.format()`): Babel checks only `%(x)s`."""
    braced = [message for message in messages(lang) if "python-brace-format" in message.flags]
    assert len(braced) > 100, len(braced)
    wrong = [(m.id, m.string) for m in braced for text in texts(m) if _brace_names(key_of(m)) != _brace_names(text)]
    assert not wrong, wrong


def test_french_texts_use_no_break_spaces_before_high_punctuation() -> None:
    wrong = [text for message in messages("fr") for text in texts(message) if FRENCH_SPACES.search(text)]
    assert not wrong, f"a plain space before : ; ? ! » or after « (U+00A0 wanted): {wrong}"


def test_english_texts_have_no_french_typography() -> None:
    wrong = [text for message in messages("en") for text in texts(message) if ENGLISH_SPACES.search(text)]
    assert not wrong, f"a space before : ; ? ! in English: {wrong}"


def test_the_site_reads_the_po_files_themselves() -> None:
    assert translate("fr", "Network status") == "État des réseaux"
    assert translate("en", "Network status") == "Network status"
    singular = "A check is down after <strong>%(failures)s</strong> consecutive failure"
    assert translations("fr").ngettext(singular, singular + "s", 2).endswith("échecs consécutifs")
    assert translations("fr").ngettext(singular, singular + "s", 1).endswith("échec consécutif")
    assert not list((ROOT / "monitor" / "locale").rglob("*.mo")), "no compiled catalog is read or committed"


def _texts_in_code(path: Path) -> list[str]:
    """The string literals of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


FRENCH_WORDS = re.compile(r"[éèêàùçÉ]|\b(?:le|la|les|des|du|depuis|avant|vous|votre)\b")


@pytest.mark.parametrize("package", ["notify", "delivery"])
def test_notification_texts_are_messages_of_the_catalogs(package: str) -> None:
    """E-mails, chat and webhook texts are written in English in the code and translated through the catalogs:
    no French text left inline (a `fr if … else en`), so a message missing in either language fails above."""
    modules = sorted((ROOT / "monitor" / package).glob("*.py"))
    assert len(modules) > 3
    inline = [(p.name, text) for p in modules for text in _texts_in_code(p) if FRENCH_WORDS.search(text)]
    assert not inline, inline
    uses = [p.name for p in modules if "translate(" in p.read_text(encoding="utf-8")]
    assert package != "notify" or {"messages.py", "scopes.py", "payloads.py"} <= set(uses), uses
