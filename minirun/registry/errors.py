"""The distribution spec's error codes, and the HTTP status each one travels with."""
from ..errors import MinirunError

STATUS = {
    "BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400, "MANIFEST_BLOB_UNKNOWN": 404, "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400, "NAME_UNKNOWN": 404, "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429,
}


class RegistryError(MinirunError):
    """An error a registry answers with: {"errors": [{"code", "message", "detail"}]}."""

    def __init__(self, code, message, status=None, detail=None, range_end=None):
        super().__init__(message)
        self.code, self.detail = code, detail
        self.status = status or STATUS.get(code, 400)
        self.range_end = range_end       # for 416: where the upload stands

    def body(self):
        return {"errors": [{"code": self.code, "message": str(self),
                            "detail": self.detail if self.detail is not None else {}}]}
