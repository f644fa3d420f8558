// Compile-time checks of the generated surface (tsc --noEmit checks this file; it never runs).
import { createClient, type JoinRoomResponse } from '../src/index.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const expectTrue = <T extends true>(_: T) => undefined;

export async function surface() {
  const api = createClient({ baseUrl: 'http://127.0.0.1:8080', token: async () => 'id-token' });

  const joined = await api.joinRoom({ params: { path: { room: 'standup' } }, body: { token: { role: 'subscriber' } } });
  expectTrue<Equal<typeof joined, JoinRoomResponse>>(true);
  const sessionId: string = joined.sessionId;
  const applicationId: string = joined.applicationId;

  // @ts-expect-error the room is a required path parameter
  await api.joinRoom();
  // @ts-expect-error unknown body fields are refused
  await api.joinRoom({ params: { path: { room: 'r' } }, body: { tokn: {} } });
  // @ts-expect-error roles are an enum
  await api.joinRoom({ params: { path: { room: 'r' } }, body: { token: { role: 'owner' } } });

  const created = await api.createSession();
  const token: string = created.token;
  const deleted = await api.deleteRoom({ params: { path: { room: 'r' } } });
  expectTrue<Equal<typeof deleted, void>>(true);
  const live = await api.livez();
  const list = await api.listArchives({ params: { path: { sessionId }, query: { count: 10 } } });
  const total: number = list.count;
  return [applicationId, token, live, total];
}
