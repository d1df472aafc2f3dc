// Listening for the test doubles (AWS, registry): a server on a free port
// that can be closed at once, its open connections (hung ones included) with it.
import type { Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** A server that is listening: where, and how to stop it. */
export interface Listening {
  /** The host it listens on, as given. */
  host: string;
  /** The port it listens on (the one chosen when 0 was asked for). */
  port: number;
  /**
   * Stops listening and destroys every connection at once; resolves when the
   * server has closed. The destroying happens before the first await, so a
   * caller may act after it without awaiting first.
   */
  close(): Promise<void>;
}

/**
 * Listens with `server` (http or https) on `host` (127.0.0.1 by default) and
 * `port` (0, a free one, by default), keeping its connections so that close()
 * can end them. Rejects with the server's error (EADDRINUSE, …) when it
 * cannot listen.
 */
export async function listen(
  server: Server,
  { host = "127.0.0.1", port = 0 }: { host?: string; port?: number } = {},
): Promise<Listening> {
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    host,
    port: (server.address() as AddressInfo).port,
    close: () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      return closed;
    },
  };
}
