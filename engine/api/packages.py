"""`GET /v1/packages`: the knowledge packages (VKP) installed on this server.

The shape is `nexus vkp list --json`'s: installed packages by `<grade>__<subject>`, each an
`engine.vkp.install.Installed` record (version, collection, the previous version kept for
rollback, when it was installed).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from engine.api.deps import Context, require_key
from engine.vkp.install import Installed

router = APIRouter(prefix="/v1", tags=["packages"], dependencies=[Depends(require_key)])


class PackageList(BaseModel):
    packages: dict[str, Installed]


@router.get("/packages", response_model=PackageList, summary="Installed knowledge packages")
def list_packages(ctx: Context) -> PackageList:
    with ctx.lock:
        installed = ctx.engine.installer.installed()
    return PackageList(packages=installed)
