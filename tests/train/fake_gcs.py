"""A local Google Cloud Storage for the bucket-workdir test: `python fake_gcs.py PORT BUCKET`.

gcp-storage-emulator, plus what tensorstore relies on and the emulator leaves out: the object's
generation header on downloads, and the generation preconditions (ifGenerationMatch,
ifGenerationNotMatch) on downloads and uploads. Without them tensorstore sees a cached read
revalidated with the same generation and rejects it ("Malformed StorageGeneration"). Object moves
(`…/moveTo/o/…`) are refused at once, as GCS does where the API is off: the emulator answers
"not implemented", which gcsfs retries for half a minute before copying and deleting instead.
"""

import os
import sys
import time
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.handlers import objects

_download, _insert = objects.download, objects.insert


def _generation(storage, bucket, name):
  try:
    return str(storage.get_file_obj(bucket, name)["generation"])
  except Exception:  # noqa: BLE001  (the emulator's NotFound)
    return "0"  # GCS's precondition value for "no live object"


def _failed_precondition(request, generation):
  """The status GCS answers when a precondition of the request does not hold, else None."""
  match = request.query.get("ifGenerationMatch")
  if match and match[0] != generation:
    return HTTPStatus.PRECONDITION_FAILED
  not_match = request.query.get("ifGenerationNotMatch")
  if not_match and not_match[0] == generation:
    return HTTPStatus.NOT_MODIFIED if request.method == "GET" else HTTPStatus.PRECONDITION_FAILED
  return None


def download(request, response, storage, *args, **kwargs):
  generation = _generation(storage, request.params["bucket_name"], request.params["object_id"])
  status = _failed_precondition(request, generation)
  if status is not None:
    response.status = status
  else:
    _download(request, response, storage, *args, **kwargs)
  if generation != "0":
    response["x-goog-generation"] = generation


def insert(request, response, storage, *args, **kwargs):
  name = (request.query.get("name") or [None])[0]
  if name is not None:
    status = _failed_precondition(
      request, _generation(storage, request.params["bucket_name"], name)
    )
    if status is not None:
      response.status = status
      return None
  return _insert(request, response, storage, *args, **kwargs)


def move_refused(request, response, storage, *args, **kwargs):
  response.status = HTTPStatus.BAD_REQUEST


server.HANDLERS = (
  (r"^/storage/v1/b/(?P<bucket_name>[-.\w]+)/o/.*/moveTo/o/.*$", {server.POST: move_refused}),
) + tuple(server.HANDLERS)

for _pattern, methods in server.HANDLERS:
  for method, handler in list(methods.items()):
    methods[method] = {_download: download, _insert: insert}.get(handler, handler)

if __name__ == "__main__":
  port, bucket = int(sys.argv[1]), sys.argv[2]
  server.create_server("localhost", port, in_memory=True, default_bucket=bucket).start()
  print("ready", flush=True)
  parent = os.getppid()
  while os.getppid() == parent:  # lives as long as the test process: writers flush at its exit
    time.sleep(0.5)
  os._exit(0)  # the emulator's server thread would keep the process alive
