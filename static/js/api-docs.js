// The API page (/api/docs): Swagger UI over the shop's own OpenAPI document. Reading it only:
// "Try it out" is off, so the page sends nothing but GETs for its own files and the document.
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("api-docs");
    window.SwaggerUIBundle({
      url: root.dataset.specUrl,
      domNode: root,
      deepLinking: true,
      supportedSubmitMethods: [],
      validatorUrl: null
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
