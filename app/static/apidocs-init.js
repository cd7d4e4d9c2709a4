/* GET /docs: starts Swagger UI (app/apidocs.py) on the OpenAPI document named by #swagger-ui's data-spec-url.
   A file of its own, not an inline script: the page's Content-Security-Policy allows scripts from this origin only. */
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    showExtensions: false,
    validatorUrl: null,
    tryItOutEnabled: false
  });
})();
