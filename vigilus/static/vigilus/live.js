// Re-sync after a reconnect. The server pushes live updates only to sockets that are open at that moment, so
// whatever happened while a socket was down (a request raised, a run finished) never reaches the page. When a
// socket opens again, this fires a `resync` event on <body>; the live regions listen for it
// (hx-trigger="resync from:body") and fetch themselves anew. The first open of each socket needs none: the
// page was rendered just before it.
(function () {
  "use strict";

  // The sockets that have opened once. htmx's ws extension keeps one wrapper per socket across its reconnects.
  const opened = new WeakSet();

  document.addEventListener("htmx:wsOpen", function (event) {
    const socket = event.detail.socketWrapper;
    if (!opened.has(socket)) {
      opened.add(socket);
      return;
    }
    htmx.trigger(document.body, "resync");
  });
})();
