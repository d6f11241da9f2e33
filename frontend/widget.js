/*
 * Support chat widget. Add to any page:
 *   <script src="https://support.example.com/widget.js" defer></script>
 * Optional attributes: data-label="Help" (button text for screen readers), data-position="left".
 * It adds a round chat button; the first click loads the chat page in compact mode (/?embed=1) in an
 * iframe, so the conversation runs on the support server's origin and nothing of it touches the host page.
 * The frame gets this page's origin (&parent=…) so that its one message, "close", is addressed to this page
 * only; messages are acted on only when they come from that frame on the support server's origin.
 * Styles are set from script (element.style), so it works under a host page's strict CSP as long as that
 * CSP allows this script and frames from the support server (frame-src).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__supportChatWidget) return;
  window.__supportChatWidget = true;
  var origin = new URL(script.src, window.location.href).origin;
  var label = script.getAttribute("data-label") || "Support chat";
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";
  var frame = null;
  var open = false;

  function css(node, styles) {
    for (var key in styles) node.style.setProperty(key, styles[key]);
  }

  var button = document.createElement("button");
  button.type = "button";
  button.setAttribute("aria-label", "Open " + label);
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("data-support-chat", "button");
  css(button, {
    position: "fixed", bottom: "20px", [side]: "20px", width: "56px", height: "56px",
    "border-radius": "50%", border: "none", background: "#2458d3", color: "#fff", cursor: "pointer",
    "box-shadow": "0 4px 14px rgba(0,0,0,.3)", "z-index": "2147483000", padding: "0",
    display: "flex", "align-items": "center", "justify-content": "center",
  });

  var svgNS = "http://www.w3.org/2000/svg";
  function icon(pathData) {
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(svgNS, "path");
    path.setAttribute("d", pathData);
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }
  var chatIcon = icon("M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
  var closeIcon = icon("M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z");
  button.appendChild(chatIcon);

  function placeFrame() {
    var narrow = window.innerWidth < 480;
    css(frame, narrow
      ? { position: "fixed", left: "0", right: "0", top: "0", bottom: "0", width: "100%", height: "100%",
          "border-radius": "0" }
      : { position: "fixed", bottom: "88px", [side]: "20px", width: "380px", height: "min(600px, calc(100vh - 110px))",
          "border-radius": "16px", left: side === "left" ? "20px" : "auto", right: side === "right" ? "20px" : "auto",
          top: "auto" });
  }

  function createFrame() {
    frame = document.createElement("iframe");
    frame.src = origin + "/?embed=1&parent=" + encodeURIComponent(window.location.origin);
    frame.title = label;
    frame.setAttribute("data-support-chat", "frame");
    css(frame, { border: "none", "box-shadow": "0 10px 40px rgba(0,0,0,.3)", "z-index": "2147483001",
      background: "#fff", "max-width": "100vw", "color-scheme": "normal" });
    placeFrame();
    window.addEventListener("resize", placeFrame);
    document.body.appendChild(frame);
  }

  function setOpen(value) {
    open = value;
    if (open && !frame) createFrame();
    if (frame) frame.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", String(open));
    button.setAttribute("aria-label", (open ? "Close " : "Open ") + label);
    button.replaceChild(open ? closeIcon : chatIcon, button.firstChild);
    if (open) frame.focus();
    else button.focus();
  }

  button.addEventListener("click", function () { setOpen(!open); });
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !frame || event.source !== frame.contentWindow) return;
    if (event.data && event.data.type === "support-chat:close" && open) setOpen(false);
  });

  function mount() { document.body.appendChild(button); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
