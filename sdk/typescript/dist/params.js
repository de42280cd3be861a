/** Request bodies, one interface per route (their field lists are checked against /openapi.json). */
export {};
