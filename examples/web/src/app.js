// @ts-check
// The room page: join through vonage-sessions with the typed client, then hand the three values
// to the official Vonage browser SDK: OT.initSession(applicationId, sessionId), session.connect(token).
// Where the service is: ?service=URL, else the `serviceUrl` of ./config.json (what
// `vonage-sessions dev --example-page` serves, with `emulated: true`), else this page's own origin.
import { ApiError, createClient, withRetry } from '@vonage-sessions/client';

const $ = (id) => document.getElementById(id);
const button = /** @type {HTMLButtonElement} */ ($('join-button'));
const roomInput = /** @type {HTMLInputElement} */ ($('room'));
const nameInput = /** @type {HTMLInputElement} */ ($('name'));

async function pageConfig() {
  let config = {};
  try {
    const res = await fetch('config.json');
    if (res.ok) config = await res.json();
  } catch {
    // No config.json: served by something other than `vonage-sessions dev`.
  }
  const fromQuery = new URLSearchParams(location.search).get('service');
  return { serviceUrl: fromQuery || config.serviceUrl || location.origin, emulated: config.emulated === true };
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = false;
}

let session;

/**
 * @param {import('@vonage-sessions/client').Client} api
 * @param {boolean} emulated
 * @param {string} room
 * @param {string} name
 */
async function join(api, emulated, room, name) {
  $('error').hidden = true;
  button.disabled = true;
  try {
    const joined = await withRetry(
      () => api.joinRoom({ params: { path: { room } }, body: { token: { data: JSON.stringify({ name }) } } }),
      { onRetry: (error, ms) => showError(`${error.detail} Retrying in ${Math.ceil(ms / 1000)} s…`) },
    );
    $('error').hidden = true;
    $('joined-room').textContent = joined.room;
    $('session-id').textContent = joined.sessionId;
    $('connection').textContent = 'connecting…';
    $('joined').hidden = false;

    session?.disconnect();
    session = OT.initSession(joined.applicationId, joined.sessionId);
    session.on('streamCreated', (event) => {
      session.subscribe(event.stream, 'subscribers', { insertMode: 'append', width: 320, height: 240 });
    });
    session.connect(joined.token, (error) => {
      if (error) {
        $('connection').textContent = 'not connected';
        const hint = emulated
          ? ' (vonage-sessions dev emulates Vonage: real Vonage servers do not know this session.)'
          : '';
        showError(`The Vonage SDK could not connect: ${error.message || error.name}.${hint}`);
        return;
      }
      $('connection').textContent = `connected as ${session.connection.connectionId}`;
      session.publish(OT.initPublisher('publisher', { name, insertMode: 'append', width: 320, height: 240 }));
    });
  } catch (error) {
    // The service refused: its problem `detail` is written for people.
    showError(error instanceof ApiError ? error.detail : String(error));
  } finally {
    button.disabled = false;
  }
}

const { serviceUrl, emulated } = await pageConfig();
$('service-url').textContent = serviceUrl;
const api = createClient({ baseUrl: serviceUrl });
$('join').addEventListener('submit', (event) => {
  event.preventDefault();
  join(api, emulated, roomInput.value.trim(), nameInput.value.trim());
});
document.body.dataset.ready = 'true';
