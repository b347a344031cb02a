// Sign-in rules that need no browser: which groups an ID token grants, and whether a callback to
// /callback may be trusted. Node runs them in tests (tests/console/test_console_rules.py).

// Shown for any sign-in the app did not start or that failed: the callback URL is attacker
// controlled, so nothing of it (`error_description` included) reaches the page.
export const SIGNIN_FAILED = 'Sign-in could not be completed; please sign in again.';

// Characters no group name of ours holds; a name with one is ignored, never split (as the API does).
const GROUP_SEPARATORS = /[,[\]\s]/;

// The groups of the ID token's `cognito:groups` claim: a JSON array in the token itself. A string
// (what API Gateway's authorizer hands the Lambda) is read the API's way: names joined by commas.
export function groupsOf(claims) {
  const value = claims ? claims['cognito:groups'] : undefined;
  let names = [];
  if (Array.isArray(value)) names = value.filter((name) => typeof name === 'string');
  else if (typeof value === 'string') names = value.split(',');
  return names.filter((name) => name && !GROUP_SEPARATORS.test(name));
}

// null when the callback's parameters answer the sign-in this tab started (`pending`), else the
// message to show. The state is checked before anything else of the URL is looked at.
export function callbackProblem(params, pending) {
  if (!pending || !pending.state || params.get('state') !== pending.state) return SIGNIN_FAILED;
  if (params.get('error') || !params.get('code')) return SIGNIN_FAILED;
  return null;
}
