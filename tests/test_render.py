"""The templates' context calls plain callables at once, and still hands the context (or the environment) to those
that ask for it — Jinja's own contract, kept by `render._Context`'s fast path."""

from __future__ import annotations

from typing import Any

from jinja2 import pass_context, pass_environment
from jinja2.runtime import Context

from monitor.web.render import _ENVS


class Greeter:
    @pass_context
    def __call__(self, context: Context, name: str) -> str:
        return f"{context['lang']}:{name}"


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def shout(self, suffix: str) -> str:
        return self.name.upper() + suffix

    @pass_context
    def said(self, context: Context) -> str:
        return f"{self.name} in {context['lang']}"


def test_plain_and_context_asking_callables_are_each_called_as_jinja_says() -> None:
    env = _ENVS["fr"]

    @pass_context
    def lang_of(context: Context) -> str:
        return str(context["lang"])

    @pass_environment
    def which(environment: Any) -> str:
        return "the French one" if environment is env else "another"

    def plain(word: str) -> str:
        return f"<{word}>"

    template = env.from_string(
        "{{ lang_of() }}|{{ plain('x') }}|{{ obj.shout('!') }}|{{ obj.said() }}|{{ greeter('ana') }}|"
        "{{ env_flag() }}|{{ ' a '.strip() }}|{{ words | length }}|"
        "{% for w in words %}{{ loop.cycle('o', 'e') }}{% endfor %}"
    )
    out = template.render(
        lang="fr",
        lang_of=lang_of,
        plain=plain,
        obj=Named("tpmon"),
        greeter=Greeter(),
        env_flag=which,
        words=["a", "b", "c"],
    )
    assert out == "fr|&lt;x&gt;|TPMON!|tpmon in fr|fr:ana|the French one|a|3|oeo"  # escaped, as ever
