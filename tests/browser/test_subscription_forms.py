"""The e-mail subscription in a browser: it works without JavaScript, and every state of its form and of the links it
sends (error, asked, confirm, confirmed, unsubscribe, unsubscribed) passes axe, in French and English."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page
from targets import wait_for

from .conftest import submit
from .test_accessibility import describe, is_wcag, run_axe

if TYPE_CHECKING:
    from .conftest import Demo


def _no_violation(page: Page, where: str) -> None:
    failures = [v for v in run_axe(page) if is_wcag(v)]
    assert not failures, describe(failures, where)


def _mail_link(demo: Demo, address: str, path: str) -> str:
    """The `path?t=…` link of the newest e-mail the demo's SMTP sink kept for `address`."""

    def found() -> str | None:
        for eml in sorted((demo.workdir / "mails").glob("*.eml"), reverse=True):
            message = message_from_bytes(eml.read_bytes(), policy=policy.default)
            if address in str(message["To"]):
                body = message.get_body(("plain",))
                text = str(body.get_content()) if body is not None else ""
                match = re.search(rf"https?://[^\s]+{re.escape(path)}\?t=[\w.\-]+", text)
                if match:
                    return match.group(0)
        return None

    link: str = wait_for(found, timeout=30, what=f"an e-mail to {address} with {path}")
    return link


def test_the_form_works_without_javascript(browser: Browser, demo: Demo) -> None:
    context = browser.new_context(java_script_enabled=False, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(demo.base + "/abonnement")
        page.get_by_label("Votre adresse de courriel").fill("sans-script@exemple.fr")
        submit(page.get_by_role("button", name="S'abonner"))
        assert page.locator("h1").inner_text() == "Vérifiez votre boîte de réception"
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_subscription_journey_is_accessible(browser: Browser, demo: Demo, lang: str) -> None:
    # axe runs as a script: this context has JavaScript (and bypasses the CSP to inject it), as the other axe tests
    context = browser.new_context(bypass_csp=True, locale="fr-FR")
    if lang == "en":
        context.add_cookies([{"name": "lang", "value": "en", "url": demo.base}])
    page = context.new_page()
    address = f"journey-{lang}@exemple.fr"
    try:
        page.goto(demo.base + "/abonnement?reseau=viamedis&domaine=optique")
        assert page.locator("select#perimetre").input_value() == "viamedis/optique"
        page.get_by_label("Votre adresse de courriel" if lang == "fr" else "Your e-mail address").fill(
            "pas-une-adresse"
        )
        submit(page.get_by_role("button", name="S'abonner" if lang == "fr" else "Subscribe"))
        assert page.locator("#adresse").get_attribute("aria-invalid") == "true"
        _no_violation(page, f"/abonnement with an invalid address ({lang})")

        page.locator("#adresse").fill(address)
        submit(page.get_by_role("button", name="S'abonner" if lang == "fr" else "Subscribe"))
        assert page.locator("h1").inner_text() in ("Vérifiez votre boîte de réception", "Check your inbox")
        _no_violation(page, f"/abonnement, asked ({lang})")

        page.goto(_mail_link(demo, address, "/abonnement/confirmer"))
        _no_violation(page, f"/abonnement/confirmer ({lang})")
        submit(page.get_by_role("button"))
        assert page.locator("h1").inner_text() in ("Abonnement confirmé", "Subscription confirmed")
        _no_violation(page, f"/abonnement/confirmer, confirmed ({lang})")

        page.goto(_mail_link(demo, address, "/abonnement/desinscription"))
        _no_violation(page, f"/abonnement/desinscription ({lang})")
        submit(page.get_by_role("button"))
        assert page.locator("h1").inner_text() in ("Désabonnement effectué", "Unsubscribed")
        _no_violation(page, f"/abonnement/desinscription, done ({lang})")
    finally:
        context.close()
