// CloudFront Function (cloudfront-js-2.0), viewer-request, on every behavior of the console's
// distribution. It keeps two rules in one place:
// - /api/... goes to the credential-vending API without the /api prefix (the API Gateway stage is
//   the origin path), so the console and its API share one origin and need no CORS;
// - any other path without a file extension is a page of the single-page app: serve /index.html.
//   (Custom error responses would do this too, but they would also replace the API's own 403/404
//   bodies, and the console shows every API error as the API's message.)
var API_PREFIX = '/api';

function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri === API_PREFIX || uri.indexOf(API_PREFIX + '/') === 0) {
    request.uri = uri.substring(API_PREFIX.length) || '/';
    return request;
  }
  var last = uri.substring(uri.lastIndexOf('/') + 1);
  if (last.indexOf('.') === -1) {
    request.uri = '/index.html';
  }
  return request;
}

// Lets the unit test load this file in Node; CloudFront Functions have no `module`.
if (typeof module !== 'undefined') {
  module.exports = { handler: handler };
}
