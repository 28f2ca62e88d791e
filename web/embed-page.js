// /embed/{room}: the player in a page of its own, for merchants who embed it with an iframe
// (`<iframe src="https://live.example.com/embed/demo#token=...">`). The token comes in the
// fragment, which session.js takes out of the address bar.
import { givenToken, roomFromPath } from './session.js';
import '/embed.js';

const player = document.createElement('sellcast-player');
player.setAttribute('room', roomFromPath());
const token = givenToken();
if (token) player.setAttribute('token', token);
document.body.append(player);
