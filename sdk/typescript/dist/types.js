/**
 * Request and response types of the gateway. Field names are the wire's. Money is USD as the gateway
 * sends it: a plain decimal string, exact to the pico-dollar ("0.000038"; parse it with a decimal
 * library, or `Number()` when a float is close enough). Catalog prices per million tokens are numbers.
 * `null` means the gateway did not say.
 */
export {};
