"""The command line's language: French by default, English for an English locale or `TPMON_LANG=en`.

Every text `tpmon` prints (help, results, usage errors) is written in English in the code, marked with `_()`,
and translated through the site's gettext catalogs (monitor/locale, `bash .ci/catalogs.sh`). The language is
read from the environment each time a text is asked, as gettext reads it: `TPMON_LANG` (fr or en) first, then
`LANGUAGE`, `LC_ALL`, `LC_MESSAGES`, `LANG`; English when the first one set names English, French otherwise
(an unset or `C`/`POSIX` locale included: French first).

argparse's own texts ("usage: ", "the following arguments are required: %s", …) go through the same catalogs:
`install_argparse_texts()` points argparse's module-level `_`/`ngettext` at them (argparse has no other hook;
it is what `gettext.install` would do for argparse's domain). The messages are listed below for extraction.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from ..i18n import N_, Lang, translate, translate_plural

__all__ = ["_", "cli_lang", "install_argparse_texts", "ngettext"]

_LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def cli_lang(environ: Mapping[str, str] | None = None) -> Lang:
    """`TPMON_LANG` if it is fr or en; else English when the first locale variable set names English; else
    French."""
    env = os.environ if environ is None else environ
    chosen = env.get("TPMON_LANG", "").strip().lower()[:2]
    if chosen in ("fr", "en"):
        return "en" if chosen == "en" else "fr"
    for name in _LOCALE_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return "en" if value.split(":")[0].lower().startswith("en") else "fr"
    return "fr"


def _(message: str) -> str:
    """`message` (English, as written in the code) in the command line's language."""
    return translate(cli_lang(), message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return translate_plural(cli_lang(), singular, plural, count)


# argparse's messages that tpmon's commands can show (Python 3.11–3.13), for the catalogs' extraction.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("unrecognized arguments: %s"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("unexpected option string: %s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
    N_("%(prog)s: error: %(message)s\n"),
)


def install_argparse_texts() -> None:
    """argparse's own texts in the command line's language (see the module's docstring)."""
    argparse._ = _  # type: ignore[attr-defined]
    argparse.ngettext = ngettext  # type: ignore[attr-defined]
