"""The IdP settings as pydantic models: one shape for the API, the console form and sync.

* :class:`IdPOptionsBase` / :class:`IdPSettingsBase` — the shape: field names, types, limits,
  defaults and their documentation. The API's request body (``IdPConfigIn``) and response
  (``IdPConfigOut``) are built on it, so a shape error there is FastAPI's 422
  ``invalid_request``.
* :class:`IdPSettings` — the shape plus every rule (printable text, the issuer's scheme under
  ``GATEHOUSE_ALLOW_INSECURE_HTTP``, scope tokens, claim names, known roles, a CA bundle that
  ``ssl`` loads). :meth:`IdPSettings.parse` is the one way raw input (API body, console form,
  stored or synced JSON) becomes settings; it raises :class:`InvalidInput` (400, code
  ``invalid_idp_config``, ``insecure_issuer`` or ``invalid_issuer``) naming the field at fault,
  which the API renders as ``{"error", "detail", "field"}`` and the console as an inline error.

The rules live in validators of the subclass, not in the shape, because the issuer rule needs
the deployment's policy (a validation *context*), which FastAPI's body parsing cannot pass.
"""

from __future__ import annotations

import re
import ssl
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from gatehouse.domain.errors import InvalidInput
from gatehouse.domain.users import ROLE_NAMES
from gatehouse.oidc import ConfigurationError, ProviderMetadata, check_issuer_url
from gatehouse.oidc.id_token import MAX_LEEWAY_SECONDS

__all__ = [
    "DEFAULT_SCOPES",
    "GroupRoleRule",
    "GroupRoleRuleBase",
    "IdPOptionsBase",
    "IdPSettings",
    "IdPSettingsBase",
    "TokenAuthMethod",
    "UserClaim",
]

TokenAuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
UserClaim = Literal["preferred_username", "email"]

DEFAULT_SCOPES: tuple[str, ...] = ("openid", "profile", "email")
#: RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,100}$")
_CLAIM_NAME = re.compile(r"^[\w.:/-]{1,100}$")
_MAX_SCOPES = 50
_MAX_RULES = 500
_INVALID = "invalid_idp_config"

# -- the shape -------------------------------------------------------------------------------


class GroupRoleRuleBase(BaseModel):
    """Members of IdP ``group`` get ``role`` in ``environment`` (``None``: every environment)."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    group: str = Field(max_length=255)
    role: str = Field(max_length=64, description="Administrator, Developer or Viewer")
    environment: str | None = Field(
        default=None, max_length=64, description="Environment name; null: every environment"
    )


class IdPOptionsBase(BaseModel):
    """The settings that have a default (what a new configuration starts from)."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    token_endpoint_auth_method: TokenAuthMethod = Field(
        default="client_secret_basic",
        description="How the web client authenticates at the token endpoint",
    )
    native_client_id: str | None = Field(
        default=None, max_length=255, description="The public client of the command-line tools"
    )
    scopes: Sequence[str] = Field(default=DEFAULT_SCOPES, max_length=_MAX_SCOPES)
    user_claim: UserClaim = Field(
        default="preferred_username",
        description="The claim that matches IT users (email: only verified addresses count)",
    )
    groups_claim: str | None = Field(default=None, max_length=100)
    group_role_rules: Sequence[GroupRoleRuleBase] = Field(default=(), max_length=_MAX_RULES)
    clock_skew_seconds: int = Field(default=60, ge=0, le=MAX_LEEWAY_SECONDS)
    ca_bundle_pem: str | None = Field(
        default=None, max_length=200_000, description="PEM certificates trusted for the IdP"
    )
    jit_provisioning: bool = Field(
        default=False, description="Create unknown users at their first sign-in"
    )
    refresh_grace_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="Grace after the ID token expires when the IdP gives no refresh token",
    )


class IdPSettingsBase(IdPOptionsBase):
    """The whole shape of one configuration version (without its secrets)."""

    display_name: str = Field(max_length=100, description="The sign-in button's text")
    issuer: str = Field(max_length=500)
    client_id: str = Field(max_length=255)


# -- the rules -------------------------------------------------------------------------------


def _error(message: str, code: str = _INVALID) -> PydanticCustomError:
    return PydanticCustomError(code, message)


def _text(model: type[BaseModel], value: Any, info: ValidationInfo, *, required: bool) -> Any:
    """Strip a text field; blank is absent (an error when ``required``); no control characters
    (the length limit is the shape's, checked after this)."""
    name = info.field_name or ""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _error(f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise _error(f"{name} must be a string.")
    value = value.strip()
    if any(unicodedata.category(c) == "Cc" for c in value):
        limit = next(
            m.max_length for m in model.model_fields[name].metadata if hasattr(m, "max_length")
        )
        raise _error(f"{name} must be at most {limit} printable characters.")
    return value


class GroupRoleRule(GroupRoleRuleBase):
    """A group rule with its role name checked and written as the role is spelt."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @field_validator("group", "role", mode="before")
    @classmethod
    def _required_text(cls, value: Any, info: ValidationInfo) -> Any:
        return _text(cls, value, info, required=True)

    @field_validator("environment", mode="before")
    @classmethod
    def _optional_text(cls, value: Any, info: ValidationInfo) -> Any:
        return _text(cls, value, info, required=False)

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        for name in ROLE_NAMES:
            if name.casefold() == value.casefold():
                return name
        raise _error(
            f"Unknown role {value!r} in a group rule; choose one of {', '.join(ROLE_NAMES)}."
        )


class IdPSettings(IdPSettingsBase):
    """One version of the IdP configuration, every rule checked (immutable).

    Build it with :meth:`parse`; the issuer rule reads ``allow_insecure_http`` from the
    validation context and, without one, refuses http (fail closed).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    # the rules decide these limits themselves (de-duplicated, then counted)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    group_role_rules: tuple[GroupRoleRule, ...] = ()

    _SENTENCES: ClassVar[dict[str, str]] = {
        "scopes": "Each scope is one word of printable characters without spaces or quotes.",
        "group_role_rules": "Each group rule is an object {group, role, environment}.",
    }

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, allow_insecure_http: bool) -> IdPSettings:
        """Validate raw input (API body, form, stored or synced JSON).

        :raises InvalidInput: the first field at fault, named in ``extra["field"]``
        """
        try:
            return cls.model_validate(
                dict(data), context={"allow_insecure_http": allow_insecure_http}
            )
        except ValidationError as exc:
            raise cls._invalid(exc.errors()[0]) from None

    @classmethod
    def _invalid(cls, error: ErrorDetails) -> InvalidInput:
        """One pydantic error as the sentence and code an administrator reads."""
        loc = error["loc"]
        field = str(loc[0]) if loc else "body"
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), field)
        kind, ctx = error["type"], error.get("ctx") or {}
        if kind in (_INVALID, "insecure_issuer", "invalid_issuer"):
            return InvalidInput(error["msg"], code=kind, field=field)
        if kind == "missing":
            detail = f"{name} is required."
        elif kind == "string_too_long":
            detail = f"{name} must be at most {ctx['max_length']} printable characters."
        elif kind == "literal_error":
            detail = f"{name} must be {str(ctx['expected']).replace(chr(39), '')}."
        elif kind in ("greater_than_equal", "less_than_equal"):
            low, high = cls._int_range(field)
            detail = f"{name} must be a whole number from {low} to {high}."
        else:
            detail = cls._SENTENCES.get(field, f"{name} is not valid.")
        return InvalidInput(detail, code=_INVALID, field=field)

    @classmethod
    def _int_range(cls, name: str) -> tuple[object, object]:
        """The shape's bounds of an integer field, for the sentence that names them."""
        metadata = cls.model_fields[name].metadata
        low = next(m.ge for m in metadata if hasattr(m, "ge"))
        high = next(m.le for m in metadata if hasattr(m, "le"))
        return low, high

    @field_validator("display_name", "issuer", "client_id", mode="before")
    @classmethod
    def _required_text(cls, value: Any, info: ValidationInfo) -> Any:
        return _text(cls, value, info, required=True)

    @field_validator("native_client_id", "groups_claim", "ca_bundle_pem", mode="before")
    @classmethod
    def _optional_text(cls, value: Any, info: ValidationInfo) -> Any:
        return _text(cls, value, info, required=False)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str, info: ValidationInfo) -> str:
        allow = bool((info.context or {}).get("allow_insecure_http", False))
        try:
            check_issuer_url(value, allow)
        except ConfigurationError as exc:
            code = "insecure_issuer" if exc.error == "insecure_url" else "invalid_issuer"
            raise _error(exc.description, code) from exc
        return value

    @field_validator("token_endpoint_auth_method", "user_claim", mode="before")
    @classmethod
    def _choice_or_default(cls, value: Any, info: ValidationInfo) -> Any:
        """An empty choice (a form's blank select) is the default."""
        return value or cls.model_fields[info.field_name or ""].default

    @field_validator("groups_claim")
    @classmethod
    def _claim_name(cls, value: str | None) -> str | None:
        if value is not None and not _CLAIM_NAME.match(value):
            raise _error("groups_claim must be a claim name.")
        return value

    @field_validator("jit_provisioning", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise _error("jit_provisioning must be true or false.")
        return value

    @field_validator("clock_skew_seconds", "refresh_grace_seconds", mode="before")
    @classmethod
    def _whole_number(cls, value: Any, info: ValidationInfo) -> Any:
        """A whole number, also as the digits a form sends; never a bool or a fraction."""
        name = info.field_name or ""
        if value is None:
            return cls.model_fields[name].default
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            low, high = cls._int_range(name)
            raise _error(f"{name} must be a whole number from {low} to {high}.")
        return value

    @field_validator("scopes", mode="before")
    @classmethod
    def _scopes(cls, value: Any) -> tuple[str, ...]:
        """RFC 6749 3.3 scope tokens, de-duplicated, ``openid`` first when missing."""
        if value is None:
            return DEFAULT_SCOPES
        items = value.split() if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(s, str) for s in items):
            raise _error("scopes must be a list of strings.")
        scopes = list(dict.fromkeys(s.strip() for s in items if s.strip()))
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        if len(scopes) > _MAX_SCOPES or not all(_SCOPE_TOKEN.match(s) for s in scopes):
            raise _error(cls._SENTENCES["scopes"])
        return tuple(scopes)

    @field_validator("group_role_rules", mode="before")
    @classmethod
    def _rule_list(cls, value: Any) -> Any:
        if value is None:
            return ()
        if not isinstance(value, list | tuple) or len(value) > _MAX_RULES:
            raise _error("group_role_rules must be a list of {group, role, environment}.")
        return value

    @field_validator("group_role_rules")
    @classmethod
    def _distinct_rules(cls, value: tuple[GroupRoleRule, ...]) -> tuple[GroupRoleRule, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("ca_bundle_pem")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ssl.create_default_context(cadata=value)
            except (ssl.SSLError, ValueError, TypeError) as exc:  # TypeError: not ASCII
                raise _error("The CA bundle is not a valid PEM certificate list.") from exc
        return value

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (what is stored per version and synced to environments)."""
        return self.model_dump(mode="json")

    def request_scopes(self, metadata: ProviderMetadata) -> list[str]:
        """The configured scopes, plus ``offline_access`` when discovery lists it (so that the
        IdP issues a refresh token that outlives its browser session where it supports that)."""
        scopes = list(dict.fromkeys(self.scopes))
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        supported = metadata.scopes_supported or ()
        if "offline_access" in supported and "offline_access" not in scopes:
            scopes.append("offline_access")
        return scopes
