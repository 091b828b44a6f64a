// helpers.mjs - the seed application's tests share the Node suites' one
// module (tests/support/spoold.mjs); their spoold runs two shards.
import { startSpoold as start, waitFor, sleep } from '../support/spoold.mjs';

export { waitFor, sleep };

/** A spoold with two shards (see tests/support/spoold.mjs). */
export function startSpoold({ args = [] } = {}) {
  return start({ args: ['--shards', '2', ...args], prefix: 'spool-node-eco-' });
}
