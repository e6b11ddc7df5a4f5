"""Packages: list packages, list/get/delete versions, for an org, a user and the authenticated user."""

from __future__ import annotations

from functools import partial

from .context import Context
from .packages import VersionGone, VersionRecord
from .pagination import PageRequest, paginate
from .render import package as render_package
from .render import package_version
from .routes import ApiError, Halt, Request, Response, Router, not_found
from .state import Package

PACKAGE_TYPES = {"npm", "maven", "rubygems", "docker", "nuget", "container"}
DOCS_VERSIONS = "https://docs.github.com/rest/packages/packages"
LAST_TAGGED = "You cannot delete the last tagged version of a package. You must delete the package instead."
TOO_POPULAR = ("Publicly visible package versions with more than 5000 downloads cannot be deleted. "
               "Contact GitHub support for further assistance.")
POPULAR_THRESHOLD = 5000
MAX_PAGE_PRODUCT = 10000


def _owner_login(ctx: Context, request: Request, scope: str) -> str:
    if scope == "user":
        assert request.token is not None  # auth is required on these routes
        return request.token.login
    return request.params["org"] if scope == "orgs" else request.params["username"]


def _owner_matches(package: Package, scope: str) -> bool:
    if scope == "orgs":
        return package.owner.type == "Organization"
    return package.owner.type == "User"


def _find_package(ctx: Context, request: Request, scope: str) -> Package:
    package_type = request.params["package_type"]
    if package_type not in PACKAGE_TYPES:
        raise not_found("Package not found.")
    login = _owner_login(ctx, request, scope)
    found = ctx.state.package(login, package_type, request.params["package_name"])
    if found is None or not _owner_matches(found, scope):
        raise not_found("Package not found.")
    return found


def _list_packages(ctx: Context, request: Request, scope: str) -> Response:
    assert request.token is not None
    if not request.token.can_list_packages:
        raise ApiError(403, "Resource not accessible by integration", DOCS_VERSIONS)
    package_type = request.arg("package_type")
    if package_type not in PACKAGE_TYPES:
        raise ApiError(422, "Invalid value for `package_type`: must be one of " + ", ".join(sorted(PACKAGE_TYPES)))
    visibility = request.arg("visibility")
    wanted = PageRequest.from_query(request.query)
    if wanted.page * wanted.per_page > MAX_PAGE_PRODUCT:
        # "The value of `per_page` multiplied by `page` cannot be greater than 10000." (declared without body)
        raise Halt(Response.empty(400))
    login = _owner_login(ctx, request, scope)
    with ctx.state.lock:
        found = [
            p for p in ctx.state.packages.values()
            if p.owner.login.lower() == login.lower() and p.package_type == package_type and _owner_matches(p, scope)
            and (visibility in (None, "", "internal") or p.visibility == visibility)
        ]
        found.sort(key=lambda p: (-p.created_at, -p.id))
        page = paginate(found, request.query, ctx.urls.api, request.path)
        body = [render_package(p, ctx.urls, len(p.backend.versions())) for p in page.items]
    return Response.json(200, body, {"link": page.link} if page.link else None)


def _versions(ctx: Context, package: Package, state: str) -> list[VersionRecord]:
    return package.backend.deleted() if state == "deleted" else package.backend.versions()


def _list_versions(ctx: Context, request: Request, scope: str) -> Response:
    state = request.arg("state", "active") or "active"
    if state not in {"active", "deleted"}:
        raise ApiError(422, "Invalid value for `state`: must be one of active, deleted")
    with ctx.state.lock:
        package = _find_package(ctx, request, scope)
        controls = package.backend.controls
        query = request.query
        wanted = PageRequest.from_query(query)
        controls.before("list", page=wanted.page, login=_login(request))
        if controls.page_cap is not None and wanted.per_page > controls.page_cap:
            query = {**query, "per_page": [str(controls.page_cap)]}
        page = paginate(_versions(ctx, package, state), query, ctx.urls.api, request.path)
        rows = list(page.items)
        if controls.shuffle is not None:
            controls.shuffle.shuffle(rows)
        body = [package_version(package, version, ctx.urls) for version in rows]
    return Response.json(200, body, {"link": page.link} if page.link else None)


def _login(request: Request) -> str | None:
    return request.token.login if request.token is not None else None


def _version_id(request: Request) -> int:
    raw = request.params["package_version_id"]
    if not raw.isdigit():
        raise not_found("Package version not found.")
    return int(raw)


def _get_version(ctx: Context, request: Request, scope: str) -> Response:
    wanted = _version_id(request)
    with ctx.state.lock:
        package = _find_package(ctx, request, scope)
        package.backend.controls.before("get", version_id=wanted, login=_login(request))
        for version in package.backend.versions() + package.backend.deleted():
            if version.id == wanted:
                return Response.json(200, package_version(package, version, ctx.urls))
    raise not_found("Package version not found.")


def _delete_version(ctx: Context, request: Request, scope: str) -> Response:
    wanted = _version_id(request)
    with ctx.state.lock:
        package = _find_package(ctx, request, scope)
        controls = package.backend.controls
        controls.before("delete", version_id=wanted, login=_login(request))
        if not controls.may_delete(_login(request)):
            # GHCR hides the package from a token without admin rights on it, on DELETE only.
            raise not_found("Package not found.")
        versions = package.backend.versions()
        target = next((v for v in versions if v.id == wanted), None)
        if target is None:
            raise not_found("Package version not found.")
        if package.visibility == "public" and target.downloads > POPULAR_THRESHOLD:
            raise ApiError(400, TOO_POPULAR, DOCS_VERSIONS)
        other_tagged = any(v.tags for v in versions if v.id != wanted)
        if (target.tags and not other_tagged) or len(versions) == 1:
            raise ApiError(400, LAST_TAGGED, DOCS_VERSIONS)
        try:
            package.backend.delete(target)
        except VersionGone:
            raise not_found("Package version not found.") from None
        package.updated_at = ctx.clock.now()
    return Response.empty(204)


def register(router: Router) -> None:
    scopes = {"orgs": "/orgs/{org}", "users": "/users/{username}", "user": "/user"}
    list_ids = {"orgs": "packages/list-packages-for-organization", "users": "packages/list-packages-for-user",
                "user": "packages/list-packages-for-authenticated-user"}
    versions_ids = {"orgs": "packages/get-all-package-versions-for-package-owned-by-org",
                    "users": "packages/get-all-package-versions-for-package-owned-by-user",
                    "user": "packages/get-all-package-versions-for-package-owned-by-authenticated-user"}
    get_ids = {"orgs": "packages/get-package-version-for-organization",
               "users": "packages/get-package-version-for-user",
               "user": "packages/get-package-version-for-authenticated-user"}
    delete_ids = {"orgs": "packages/delete-package-version-for-org",
                  "users": "packages/delete-package-version-for-user",
                  "user": "packages/delete-package-version-for-authenticated-user"}
    for scope, prefix in scopes.items():
        versions = prefix + "/packages/{package_type}/{package_name}/versions"
        router.add("GET", prefix + "/packages", list_ids[scope], partial(_list_packages, scope=scope), "required")
        router.add("GET", versions, versions_ids[scope], partial(_list_versions, scope=scope), "required")
        router.add("GET", versions + "/{package_version_id}", get_ids[scope], partial(_get_version, scope=scope),
                   "required")
        router.add("DELETE", versions + "/{package_version_id}", delete_ids[scope],
                   partial(_delete_version, scope=scope), "required")
