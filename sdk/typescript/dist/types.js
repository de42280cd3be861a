/**
 * Request and response types of the gateway. Field names are the wire's. Costs are USD as JSON
 * numbers (the gateway prints the shortest decimal that round-trips: exact to the pico-dollar);
 * balances are decimal strings, as the gateway sends them. `null` means the gateway did not say.
 */
export {};
