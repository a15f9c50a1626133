"""Why a SAML response was refused: one code per rule, each with a sentence for the person."""

from __future__ import annotations

from onelogin.saml2.errors import OneLogin_Saml2_ValidationError as V

_RESTART = "Nothing was linked or signed in. Please start again from the sign-in page."

MESSAGES: dict[str, str] = {
    "unknown_connection": "This company sign-in is not set up on this site. " + _RESTART,
    "connection_disabled": "Sign-in with {company} is turned off on this site. Ask its staff, or sign in "
    "another way.",
    "not_configured": "Company sign-in is not set up correctly on this site; its staff have been told.",
    "missing_response": "{company}'s answer was incomplete (no SAML response). " + _RESTART,
    "relay_state": "{company}'s answer asked to send you to another site, so it was refused. " + _RESTART,
    "unsigned": "{company}'s answer was not signed, so it was refused. " + _RESTART,
    "bad_signature": "{company}'s answer was not signed by {company}'s configured keys, so it was refused. "
    + _RESTART,
    "wrapped": "{company}'s answer was rearranged around its signature (a known attack), so it was "
    "refused. " + _RESTART,
    "wrong_audience": "{company}'s answer was meant for another site, so it was refused. " + _RESTART,
    "wrong_destination": "{company}'s answer was addressed to another page or site, so it was refused. "
    + _RESTART,
    "wrong_recipient": "{company}'s answer was addressed to another recipient, or its confirmation had "
    "expired, so it was refused. " + _RESTART,
    "wrong_issuer": "{company}'s answer came from another identity provider, so it was refused. " + _RESTART,
    "expired": "{company}'s answer had already expired. " + _RESTART,
    "not_yet_valid": "{company}'s answer is dated in the future (a clock may be wrong). Please try again "
    "in a minute.",
    "deprecated_algorithm": "{company}'s answer was signed with an outdated algorithm (SHA-1), so it was "
    "refused; its administrators need to switch to SHA-256.",
    "denied": "{company} did not sign you in (it answered with an error). " + _RESTART,
    "malformed": "{company} sent an answer this site could not read. " + _RESTART,
    "replayed": "That {company} answer was already used once, so it was refused. " + _RESTART,
    "unsolicited": "This site did not ask {company} to sign you in, and sign-ins started at {company} are "
    "not accepted for it. " + _RESTART,
    "other_browser": "That {company} sign-in was not started in this browser (or was already finished), "
    "so it was refused. " + _RESTART,
    "wrong_request": "That {company} answer does not match the sign-in this browser started, so it was "
    "refused. " + _RESTART,
    "user_mismatch": "That {company} sign-in was started by a different user than the one signed in now, "
    "so it was refused and nothing was linked. " + _RESTART,
    "request_expired": "That {company} sign-in was started too long ago to finish now. " + _RESTART,
    "idp_initiated_signed_in": "A sign-in started at {company} cannot link an account to a profile that "
    'is already signed in. Use "Connect" on your connections page instead.',
    "no_subject": "{company}'s answer did not say who you are (no subject), so it was refused. " + _RESTART,
}

#: python3-saml's validation codes, in our words.
LIBRARY_CODES: dict[int, str] = {
    V.NO_SIGNATURE_FOUND: "unsigned",
    V.NO_SIGNED_ASSERTION: "unsigned",
    V.NO_SIGNED_MESSAGE: "unsigned",
    V.INVALID_SIGNATURE: "bad_signature",
    V.WRONG_SIGNED_ELEMENT: "wrapped",
    V.ID_NOT_FOUND_IN_SIGNED_ELEMENT: "wrapped",
    V.DUPLICATED_ID_IN_SIGNED_ELEMENTS: "wrapped",
    V.INVALID_SIGNED_ELEMENT: "wrapped",
    V.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS: "wrapped",
    V.UNEXPECTED_SIGNED_ELEMENTS: "wrapped",
    V.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE: "wrapped",
    V.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION: "wrapped",
    V.WRONG_NUMBER_OF_SIGNATURES: "wrapped",
    V.WRONG_NUMBER_OF_ASSERTIONS: "wrapped",
    V.WRONG_AUDIENCE: "wrong_audience",
    V.WRONG_DESTINATION: "wrong_destination",
    V.EMPTY_DESTINATION: "wrong_destination",
    V.WRONG_SUBJECTCONFIRMATION: "wrong_recipient",
    V.WRONG_ISSUER: "wrong_issuer",
    V.ISSUER_MULTIPLE_IN_RESPONSE: "wrong_issuer",
    V.ISSUER_NOT_FOUND_IN_ASSERTION: "wrong_issuer",
    V.ASSERTION_EXPIRED: "expired",
    V.RESPONSE_EXPIRED: "expired",
    V.SESSION_EXPIRED: "expired",
    V.ASSERTION_TOO_EARLY: "not_yet_valid",
    V.WRONG_INRESPONSETO: "wrong_request",
    V.DEPRECATED_SIGNATURE_METHOD: "deprecated_algorithm",
    V.DEPRECATED_DIGEST_METHOD: "deprecated_algorithm",
    V.STATUS_CODE_IS_NOT_SUCCESS: "denied",
    V.NO_NAMEID: "no_subject",
    V.EMPTY_NAMEID: "no_subject",
}


class SamlRefused(Exception):
    """A SAML response this site refuses; ``code`` is one of ``MESSAGES``."""

    def __init__(self, code: str, *, company: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.company = company or "Your company"

    def message(self) -> str:
        return MESSAGES.get(self.code, MESSAGES["malformed"]).format(company=self.company)
