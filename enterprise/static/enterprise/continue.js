// The IdP's answer arrives as a cross-site POST without the session cookie: post it again from here.
document.getElementById("saml-continue").submit();
