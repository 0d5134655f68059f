from django.contrib import admin
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import path, reverse


def where(request):
    return JsonResponse({"reverse": reverse("where"), "absolute": request.build_absolute_uri(),
                         "static": static("app.css"), "secure": request.is_secure()})


def go(request):
    return redirect("where")


def index(request):
    return HttpResponse("prefixed site", content_type="text/plain")


urlpatterns = [
    path("", index),
    path("where/", where, name="where"),
    path("go/", go),
    path("admin/", admin.site.urls),
]
